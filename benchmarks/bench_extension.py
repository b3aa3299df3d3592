"""An extension route against the Resize Images extension's own sharp calls: CPU per image, quality at equal bytes.

For each IMAGE_TYPE set (`--types`, repeatable; default `jpeg,webp` and `false`) and the same IMG_SIZES (`--sizes`):
- ours: `python -m image_pipeline process --route NAME --out DIR FILES` with a routes file holding one extension route
  (`extension = "storage-resize-images"`, those IMG_SIZES and IMAGE_TYPE, OUTPUT_OPTIONS as calibrated below);
- the extension: the shared `ext_pipeline.cjs` with the same sizes and types (it replays the extension's sharp calls,
  call for call, re-encodes included), run by node with sharp from `--sharp-node-modules DIR`.

Quality (the shared `quality.py`: PSNR and SSIM against an exact Lanczos resize of the oriented original, mean bytes
per format and box): the extension's outputs are the reference. Where ours at sharp's default quality are more than
3 % off its bytes in a format and box, that box is compared at the OUTPUT_OPTIONS quality whose bytes come nearest
(a bisection over untimed runs of the same route); equal quality then means bytes within 3 % and PSNR not lower, per
format and box. OUTPUT_OPTIONS has one quality per format: the timed runs use the mean of its boxes' qualities.

CPU (at those qualities): whole processes pinned to one core (`taskset -c 0`), user+sys from each child's
own resource usage (wait4), ours and the extension alternating (who goes first alternates by round), `--rounds` times.
Each round runs each side twice, over the files once and `-n` times in one process; the difference between the two
is `-n - 1` passes of pure image work, so CPU per image excludes the start-up (interpreter or node, imports, loading
sharp, reading the routes file), which is reported apart as what the one-pass process costs beyond its images.
Medians over the rounds and the median of the round-by-round ratio ours / extension, with their spread. libvips
runs one thread on the node side (VIPS_CONCURRENCY=1), as ours has one encode thread on one core: neither side pays
for threads that would only contend for the core.

Run from the repository root, sharp installed outside it (any node_modules folder holding sharp):

    python benchmarks/bench_extension.py --sharp-node-modules DIR [--rounds 7] [-n 5] [--sizes 200x200,680x680]
        [--types jpeg,webp --types false] [--photos DIR] [--ext-script PATH] [--quality-script PATH]
        [--report docs/performance.md]

Without --sharp-node-modules only our side runs (CPU, no ratio, no quality comparison), saying why. The shared
`ext_pipeline.cjs`, `quality.py` and photos are found beside the repository (../shared) unless given.
--report rewrites the part of that markdown file between its bench_extension markers with this run's tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bench_core import write_report

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ROUTE = "bench"
MAX_BYTES_DELTA = 0.03
# sharp's default quality per format, the one our extension routes use where OUTPUT_OPTIONS names none.
DEFAULT_QUALITY = {"jpeg": 80, "jpg": 80, "webp": 80, "avif": 50, "tiff": 80, "tif": 80}
MARKERS = "bench_extension"


# A format (as the outputs' file extension spells it) and an IMG_SIZES box: what quality is compared per.
Key = tuple[str, str]


@dataclass(frozen=True)
class QualityRow:
    """quality.py's figures for one side, format and box: means over the files, and the lowest PSNR."""

    psnr: float
    psnr_min: float
    ssim: float
    bytes: float


@dataclass
class TypeSet:
    """One IMAGE_TYPE value measured: the qualities ours runs at, its CPU rounds and its quality rows."""

    types: str
    # OUTPUT_OPTIONS qualities of the timed runs ({}: sharp's defaults).
    cpu_qualities: dict[str, int] = field(default_factory=dict)
    # The quality each format and box is compared at: the default's unless its bytes were more than 3 % off.
    box_qualities: dict[Key, int] = field(default_factory=dict)
    # side -> per round: (cpu seconds of the one-pass process, of the n-pass process, peak RSS MiB of the latter)
    runs: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    reference: dict[Key, QualityRow] = field(default_factory=dict)  # the extension's
    defaults: dict[Key, QualityRow] = field(default_factory=dict)  # ours at sharp's default qualities
    compared: dict[Key, QualityRow] = field(default_factory=dict)  # ours at box_qualities


def main() -> int:
    """Measure every type set, print the report, and write it into --report when asked."""
    args = parse_args()
    files = args.files or sorted(args.photos.glob("*.jpg"))
    if not files:
        print(f"no JPEG photos in {args.photos}: give --photos DIR or files")
        return 2
    node_modules = sharp_node_modules(args)
    type_sets = [TypeSet(types) for types in args.types or ["jpeg,webp", "false"]]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for type_set in type_sets:
            work = scratch / type_set.types.replace(",", "-")
            if node_modules is not None:
                compare_quality(type_set, args, files, node_modules, work)
            measure_cpu(type_set, args, files, node_modules, work)
    lines = report(type_sets, args, files, node_modules is not None)
    print("\n".join(lines))
    if args.report:
        write_report(args.report, lines, MARKERS)
    return 0


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sharp-node-modules", type=Path, metavar="DIR", help="a node_modules folder holding sharp")
    parser.add_argument("--sizes", default="200x200,680x680", help="IMG_SIZES (default 200x200,680x680)")
    parser.add_argument(
        "--types", action="append", help="an IMAGE_TYPE value to measure, repeatable (default: jpeg,webp and false)"
    )
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds of each side (default 7)")
    parser.add_argument("-n", type=int, default=5, help="passes over the files in the long process (default 5)")
    parser.add_argument("--photos", type=Path, default=SHARED / "corpus" / "photos", help="folder of JPEG photos")
    parser.add_argument("--ext-script", type=Path, default=SHARED / "bench" / "ext_pipeline.cjs")
    parser.add_argument("--quality-script", type=Path, default=SHARED / "bench" / "quality.py")
    parser.add_argument("--report", type=Path, help="markdown file whose bench_extension section is rewritten")
    parser.add_argument("files", nargs="*", type=Path, help="images to use instead of the photos' JPEGs")
    args = parser.parse_args()
    if args.n < 2 or args.rounds < 1:
        parser.error("-n must be at least 2 (the one-pass process is subtracted) and --rounds at least 1")
    return args


def sharp_node_modules(args: argparse.Namespace) -> Path | None:
    """The node_modules folder to load sharp from, or None (why, printed) when the extension's side cannot run."""
    if args.sharp_node_modules is None:
        print("extension: skipped (no --sharp-node-modules DIR: ours alone, no ratio and no quality comparison)")
        return None
    if shutil.which("node") is None or not args.ext_script.is_file():
        print(f"extension: skipped (node or {args.ext_script} is missing)")
        return None
    probe = subprocess.run(
        ["node", "-e", "require('sharp')"], capture_output=True, env=node_env(args.sharp_node_modules)
    )
    if probe.returncode != 0:
        print(f"extension: skipped (node cannot load sharp from {args.sharp_node_modules})")
        return None
    return args.sharp_node_modules


def node_env(node_modules: Path) -> dict[str, str]:
    """node's environment: sharp from `node_modules`, libvips on one thread."""
    return {**os.environ, "NODE_PATH": str(node_modules.resolve()), "VIPS_CONCURRENCY": "1"}


# ---------------------------------------------------------------------------
# The two sides' commands
# ---------------------------------------------------------------------------


def routes_file(folder: Path, sizes: str, types: str, qualities: dict[str, int]) -> Path:
    """A routes file with the one extension route measured; OUTPUT_OPTIONS only for the qualities given."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "[[route]]",
        f'name = "{ROUTE}"',
        'extension = "storage-resize-images"',
        f'IMG_SIZES = "{sizes}"',
        f'IMAGE_TYPE = "{types}"',
    ]
    if qualities:
        options = json.dumps({fmt: {"quality": quality} for fmt, quality in qualities.items()})
        lines.append(f"OUTPUT_OPTIONS = {json.dumps(options)}")
    path = folder / "routes.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def ours(routes: Path, files: list[Path], passes: int, out: Path) -> tuple[list[str], dict[str, str]]:
    """`process --route` over the files `passes` times in one process, on core 0."""
    command = ["taskset", "-c", "0", sys.executable, "-m", "image_pipeline", "process", "--route", ROUTE]
    command += ["--out", str(out), *(str(path) for path in files * passes)]
    return command, {**os.environ, "ROUTES_FILE": str(routes), "PYTHONPATH": str(REPO)}


def extension(
    args: argparse.Namespace, node_modules: Path, types: str, files: list[Path], passes: int, out: Path | None
) -> tuple[list[str], dict[str, str]]:
    """ext_pipeline.cjs with the same sizes and types, `passes` rounds in one process, on core 0."""
    command = ["taskset", "-c", "0", "node", str(args.ext_script), "--sizes", args.sizes, "--types", types]
    command += ["-n", str(passes), *(["--out", str(out)] if out else []), *(str(path) for path in files)]
    return command, node_env(node_modules)


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a command to its end: user+sys CPU seconds and peak RSS (MiB) of that process alone (wait4)."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"{' '.join(command[:8])} ... exited {process.returncode}:\n{tail}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


# ---------------------------------------------------------------------------
# Quality and calibration
# ---------------------------------------------------------------------------


def compare_quality(
    type_set: TypeSet, args: argparse.Namespace, files: list[Path], node_modules: Path, work: Path
) -> None:
    """The extension's outputs, ours at the defaults, and ours at the qualities nearest the extension's bytes."""
    run_measured(*extension(args, node_modules, type_set.types, files, 1, work / "extension"))
    reference_bytes = mean_bytes(work / "extension")
    runs = OursRuns(args, files, type_set.types, work)
    default_bytes = runs.bytes_at({fmt: DEFAULT_QUALITY[fmt] for fmt, _ in reference_bytes})
    type_set.box_qualities = {
        key: DEFAULT_QUALITY[key[0]]
        if abs(default_bytes[key] / reference_bytes[key] - 1) <= MAX_BYTES_DELTA
        else nearest_quality(runs, key, reference_bytes[key])
        for key in reference_bytes
    }
    formats = {fmt for fmt, _ in reference_bytes}
    means = {
        fmt: round(statistics.fmean(quality for (of, _), quality in type_set.box_qualities.items() if of == fmt))
        for fmt in formats
    }
    type_set.cpu_qualities = {fmt: quality for fmt, quality in means.items() if quality != DEFAULT_QUALITY[fmt]}
    folders = {key: runs.folder_of(key[0], quality) for key, quality in type_set.box_qualities.items()}
    any_format = min(formats)
    defaults = runs.folder_of(any_format, DEFAULT_QUALITY[any_format])  # the all-defaults run
    rows = outputs_quality(args, list(dict.fromkeys([work / "extension", defaults, *folders.values()])))
    type_set.reference = {key: rows[work / "extension"][key] for key in reference_bytes}
    type_set.defaults = {key: rows[defaults][key] for key in reference_bytes}
    type_set.compared = {key: rows[folder][key] for key, folder in folders.items()}


class OursRuns:
    """Untimed runs of ours over the files at chosen qualities, each once: their folders and mean bytes."""

    def __init__(self, args: argparse.Namespace, files: list[Path], types: str, work: Path) -> None:
        self._args, self._files, self._types, self._work = args, files, types, work
        self._folders: dict[tuple[str, int], Path] = {}  # (format, quality) -> a run that made it
        self._bytes: dict[tuple[str, int], dict[str, float]] = {}  # (format, quality) -> box -> mean bytes

    def bytes_at(self, qualities: dict[str, int]) -> dict[Key, float]:
        """Mean bytes per format and box with these qualities (one run, unless every format's is known)."""
        if any((fmt, quality) not in self._bytes for fmt, quality in qualities.items()):
            self._run(qualities)
        return {
            (fmt, box): size for fmt, quality in qualities.items() for box, size in self._bytes[fmt, quality].items()
        }

    def folder_of(self, fmt: str, quality: int) -> Path:
        """The folder of a run that made this format at this quality."""
        if (fmt, quality) not in self._folders:
            self._run({fmt: quality})
        return self._folders[fmt, quality]

    def _run(self, qualities: dict[str, int]) -> None:
        out = self._work / f"ours-{len(set(self._folders.values()))}"
        explicit = {fmt: quality for fmt, quality in qualities.items() if quality != DEFAULT_QUALITY[fmt]}
        routes = routes_file(self._work / f"routes-{out.name}", self._args.sizes, self._types, explicit)
        run_measured(*ours(routes, self._files, 1, out))
        sizes = mean_bytes(out)
        for fmt in {of for of, _ in sizes}:
            quality = qualities.get(fmt, DEFAULT_QUALITY[fmt])
            # The first run of a (format, quality) keeps it: the all-defaults run stays every default's.
            self._folders.setdefault((fmt, quality), out)
            self._bytes[fmt, quality] = {box: size for (of, box), size in sizes.items() if of == fmt}


def nearest_quality(runs: OursRuns, key: Key, target: float) -> int:
    """The quality whose mean bytes in this format and box are nearest the extension's: a bisection for the highest
    quality at or under them (bytes grow with quality), then that one or the next one up."""
    fmt, _ = key
    low, high = 1, 100
    while low < high:
        middle = (low + high + 1) // 2
        if runs.bytes_at({fmt: middle})[key] <= target:
            low = middle
        else:
            high = middle - 1
    return min(
        range(low, min(low + 1, 100) + 1), key=lambda quality: abs(runs.bytes_at({fmt: quality})[key] / target - 1)
    )


def mean_bytes(folder: Path) -> dict[Key, float]:
    """Mean file size per format and box of a folder of `<stem>_<WxH>.<ext>` outputs."""
    sizes: dict[Key, list[int]] = {}
    for path in folder.iterdir():
        sizes.setdefault(output_key(path), []).append(path.stat().st_size)
    return {key: statistics.fmean(values) for key, values in sizes.items()}


def output_key(path: Path) -> Key:
    """An output's format (its extension, lower case) and box (the WxH its name ends with)."""
    return path.suffix.lstrip(".").lower(), path.stem.rsplit("_", 1)[1]


def outputs_quality(args: argparse.Namespace, folders: list[Path]) -> dict[Path, dict[Key, QualityRow]]:
    """quality.py on folders of `<stem>_<WxH>.<ext>` outputs, in one call (each original is read once)."""
    sizes = args.sizes.split(",")
    renamed = {}
    for folder in folders:
        # quality.py wants `<stem>_<integer box>.<ext>`: a box goes by its place in IMG_SIZES there (1, 2, ...).
        target = folder.parent / "for-quality" / folder.name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for path in folder.iterdir():
            stem, box = path.stem.rsplit("_", 1)
            shutil.copyfile(path, target / f"{stem}_{sizes.index(box) + 1}{path.suffix}")
        renamed[folder.name] = folder
    originals = args.files[0].parent if args.files else args.photos
    completed = subprocess.run(
        [sys.executable, str(args.quality_script), "--originals", str(originals)]
        + [str(folder.parent / "for-quality" / folder.name) for folder in folders],
        capture_output=True,
        text=True,
        check=True,
    )
    rows: dict[Path, dict[Key, QualityRow]] = {folder: {} for folder in folders}
    for line in completed.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 10 and fields[2].isdigit():
            row = QualityRow(float(fields[3]), float(fields[4]), float(fields[5]), float(fields[8]))
            rows[renamed[fields[0]]][fields[1], sizes[int(fields[2]) - 1]] = row
    return rows


def bytes_delta(ours_row: QualityRow, reference: QualityRow) -> float:
    """Our mean bytes relative to the extension's (+0.02: 2 % more)."""
    return ours_row.bytes / reference.bytes - 1


# ---------------------------------------------------------------------------
# CPU
# ---------------------------------------------------------------------------


def measure_cpu(
    type_set: TypeSet, args: argparse.Namespace, files: list[Path], node_modules: Path | None, work: Path
) -> None:
    """`--rounds` rounds; in each, every side runs one pass and `-n` passes, the sides alternating."""
    routes = routes_file(work / "timed", args.sizes, type_set.types, type_set.cpu_qualities)
    sides = {"ours": lambda passes: ours(routes, files, passes, work / "timed" / "ours")}
    if node_modules is not None:
        sides["extension"] = lambda passes: extension(args, node_modules, type_set.types, files, passes, None)
    for round_index in range(args.rounds):
        order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
        measured: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for passes in (1, args.n):
            for side in order:
                measured[side].append(run_measured(*sides[side](passes)))
        for side, ((one, _), (many, rss)) in measured.items():
            type_set.runs.setdefault(side, []).append((one, many, rss))
        print(
            f"IMAGE_TYPE={type_set.types} round {round_index + 1}: "
            + ", ".join(
                f"{side} {per_image_ms(runs[-1], len(files), args.n):.1f} ms" for side, runs in type_set.runs.items()
            ),
            flush=True,
        )


def per_image_ms(run: tuple[float, float, float], images: int, passes: int) -> float:
    """CPU ms per image without the start-up: the n-pass process less the one-pass process, per extra image."""
    one, many, _ = run
    return (many - one) * 1000 / ((passes - 1) * images)


def start_up_ms(run: tuple[float, float, float], images: int, passes: int) -> float:
    """What the one-pass process costs beyond its images' share."""
    return run[0] * 1000 - per_image_ms(run, images, passes) * images


def whole_ms(run: tuple[float, float, float], images: int, passes: int) -> float:
    """CPU ms per image of the n-pass process, start-up included."""
    return run[1] * 1000 / (images * passes)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def report(type_sets: list[TypeSet], args: argparse.Namespace, files: list[Path], compared: bool) -> list[str]:
    """The markdown: per type set, the CPU table and ratios, then quality per format and box."""
    images = len(files)
    lines = [
        f"Generated by `python benchmarks/bench_extension.py --rounds {args.rounds} -n {args.n}` on {date.today()}: "
        f"IMG_SIZES={args.sizes}, {images} photos, {os.cpu_count()} CPUs, every process pinned to one core.",
        "",
    ]
    for type_set in type_sets:
        outputs = images * len(args.sizes.split(",")) * len(type_set.types.split(","))
        options = (
            json.dumps({fmt: {"quality": quality} for fmt, quality in sorted(type_set.cpu_qualities.items())})
            if type_set.cpu_qualities
            else "none (sharp's default qualities)"
        )
        lines += [
            f"### IMAGE_TYPE={type_set.types}: {outputs} outputs per pass",
            "",
            f"Our OUTPUT_OPTIONS in the timed runs: {options}.",
            "",
            "| side | CPU ms / image, start-up excluded (median) | rounds | start-up ms | "
            f"whole process ms / image ({args.n} passes) | peak RSS MiB |",
            "|---|---:|---|---:|---:|---:|",
        ]
        for side, runs in type_set.runs.items():
            per_image = [per_image_ms(run, images, args.n) for run in runs]
            lines.append(
                f"| {side} | {statistics.median(per_image):.1f} | {', '.join(f'{value:.0f}' for value in per_image)} "
                f"| {statistics.median(start_up_ms(run, images, args.n) for run in runs):.0f} "
                f"| {statistics.median(whole_ms(run, images, args.n) for run in runs):.1f} "
                f"| {statistics.median(run[2] for run in runs):.0f} |"
            )
        if "extension" in type_set.runs:
            lines += ["", *ratio_lines(type_set, images, args.n)]
        if compared:
            lines += ["", *quality_table(type_set)]
        lines.append("")
    return lines


def ratio_lines(type_set: TypeSet, images: int, passes: int) -> list[str]:
    """The medians of the round-by-round ratios ours / extension, with their spread."""
    pairs = list(zip(type_set.runs["ours"], type_set.runs["extension"], strict=True))
    per_image = [
        per_image_ms(ours_run, images, passes) / per_image_ms(theirs, images, passes) for ours_run, theirs in pairs
    ]
    whole = [whole_ms(ours_run, images, passes) / whole_ms(theirs, images, passes) for ours_run, theirs in pairs]
    return [
        f"CPU per image, ours / extension: **{statistics.median(per_image):.3f}** (median of {len(pairs)} paired "
        f"rounds; min {min(per_image):.3f}, max {max(per_image):.3f}); whole processes, start-up included: "
        f"{statistics.median(whole):.3f} ({min(whole):.3f}–{max(whole):.3f})."
    ]


def quality_table(type_set: TypeSet) -> list[str]:
    """Per format and box: the extension's PSNR and bytes, ours at the defaults, ours at the qualities used."""
    lines = [
        "| format | box | PSNR extension | bytes extension | ours at defaults: PSNR, bytes | quality | PSNR ours | "
        "Δ dB | SSIM ours / extension | Δ bytes | equal quality |",
        "|---|---|---:|---:|---|---:|---:|---:|---|---:|---|",
    ]
    for key, theirs in sorted(type_set.reference.items(), key=lambda item: (item[0][0], _box_area(item[0][1]))):
        fmt, box = key
        default, ours_row = type_set.defaults[key], type_set.compared[key]
        delta_db, delta_bytes = ours_row.psnr - theirs.psnr, bytes_delta(ours_row, theirs)
        equal = round(delta_db, 2) >= 0 and abs(delta_bytes) <= MAX_BYTES_DELTA
        quality = type_set.box_qualities[key]
        lines.append(
            f"| {fmt} | {box} | {theirs.psnr:.2f} | {_thousands(theirs.bytes)} | {default.psnr:.2f}, "
            f"{bytes_delta(default, theirs):+.1%} | {quality}{' (default)' if quality == DEFAULT_QUALITY[fmt] else ''} "
            f"| {ours_row.psnr:.2f} | {delta_db:+.2f} | {ours_row.ssim:.4f} / {theirs.ssim:.4f} | {delta_bytes:+.1%} "
            f"| {'yes' if equal else '**no**'} |"
        )
    return lines


def _thousands(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _box_area(box: str) -> int:
    width, height = (int(edge) for edge in box.split("x"))
    return width * height


if __name__ == "__main__":
    sys.exit(main())
