"""The imaging core against sharp, whole process against whole process, at equal quality.

Workloads (each image: decode, orient, variants fitting 2048, 1024 and 256 px boxes, WebP quality 80, no metadata):
- photos: the JPEG photos of the shared benchmark corpus beside the repository (or --photos DIR);
- illustrations: the images `benchmarks/illustrations.py` generates (PNG with and without alpha, one WebP, one JPEG);
- 100mp: one 10000x10000 JPEG of fine detail (about 25 MB), generated here; peak memory is the point.

Method: each side is a whole process pinned to one core (`taskset -c 0`), ours then sharp, alternating, `--rounds`
times; CPU is user+sys of the whole process (interpreter or node start included) per image, from the kernel's
accounting of the child; peak RSS is each process's own. Medians over the rounds, and the median of the round-by-round
ratio ours / sharp. The first round's outputs are compared with the shared `quality.py` (PSNR, SSIM, bytes per box):
equal quality means every box within 0.3 dB PSNR and within 3 % of sharp's bytes.

sharp is installed by this script, once, into a cache folder outside the repository:

    python benchmarks/bench_core.py --install-sharp
    # runs: npm install --no-save --prefix ~/.cache/image-pipeline-bench/sharp sharp@0.35.5

then:

    python benchmarks/bench_core.py [--rounds 5] [-n 3] [--report docs/performance.md]
        [--photos DIR] [--sharp-script PATH] [--quality-script PATH] [--workloads photos,illustrations,100mp]

The shared `sharp_variants.cjs` and `quality.py` are found beside the repository (../shared/bench) unless given.
--report rewrites the generated part of that markdown file (between its bench_core markers) with this run's tables.
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

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_PHOTOS = SHARED / "corpus" / "photos"
SHARP_VERSION = "0.35.5"
SHARP_DIR = Path.home() / ".cache" / "image-pipeline-bench" / "sharp"
BOXES = (2048, 1024, 256)
QUALITY = 80
MAX_PSNR_DELTA_DB = 0.3
MAX_BYTES_DELTA = 0.03
MARKERS = "bench_core"


@dataclass
class Workload:
    """A named set of images, with the passes each process makes over it and where its originals are."""

    name: str
    files: list[Path]
    passes: int
    originals: Path
    cpu: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, list[float]] = field(default_factory=dict)
    wall: dict[str, list[float]] = field(default_factory=dict)
    quality: list[str] = field(default_factory=list)


def main() -> int:
    """Install sharp, or run every workload alternating ours and sharp, then print (and optionally write) the report."""
    args = parse_args()
    if args.install_sharp:
        return install_sharp()
    sharp = sharp_available(args)
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        workloads = make_workloads(args, scratch)
        for workload in workloads:
            measure(workload, args, sharp, scratch / workload.name)
        lines = report(workloads, args, sharp)
    print("\n".join(lines))
    if args.report:
        write_report(args.report, lines)
    return 0


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--install-sharp", action="store_true", help=f"npm install sharp@{SHARP_VERSION} into {SHARP_DIR}"
    )
    parser.add_argument("--photos", type=Path, default=SHARED_PHOTOS, help="folder of JPEG photos")
    parser.add_argument("-n", type=int, default=3, help="passes over the photos and the illustrations per process")
    parser.add_argument("--rounds", type=int, default=5, help="process runs of each side, alternating")
    parser.add_argument("--workloads", default="photos,illustrations,100mp", help="comma-separated workloads to run")
    parser.add_argument("--sharp-script", type=Path, default=SHARED / "bench" / "sharp_variants.cjs")
    parser.add_argument("--quality-script", type=Path, default=SHARED / "bench" / "quality.py")
    parser.add_argument("--report", type=Path, help="markdown file whose bench_core section is rewritten")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def install_sharp() -> int:
    """The one documented way sharp gets here: its pinned version, into the cache folder, with npm."""
    SHARP_DIR.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--no-save", "--prefix", str(SHARP_DIR), f"sharp@{SHARP_VERSION}"]
    print(" ".join(command))
    return subprocess.run(command, check=False).returncode


def sharp_available(args: argparse.Namespace) -> bool:
    """Whether node can load the installed sharp and the shared script exists (else why not, printed)."""
    if shutil.which("node") is None or not args.sharp_script.is_file():
        print("sharp: skipped (node or the shared sharp_variants.cjs is missing)")
        return False
    probe = subprocess.run(["node", "-e", "require('sharp')"], capture_output=True, env=_node_env())
    if probe.returncode != 0:
        print("sharp: skipped (not installed: run this script with --install-sharp)")
        return False
    return True


def _node_env() -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(SHARP_DIR / "node_modules")}


def make_workloads(args: argparse.Namespace, scratch: Path) -> list[Workload]:
    """The chosen workloads, their inputs generated in `scratch` where they are not the shared photos."""
    chosen = args.workloads.split(",")
    workloads = []
    if "photos" in chosen:
        photos = sorted(args.photos.glob("*.jpg"))
        workloads.append(Workload("photos", photos, args.n, args.photos))
    if "illustrations" in chosen:
        folder = scratch / "illustrations-in"
        _python([str(REPO / "benchmarks" / "illustrations.py"), str(folder)])
        workloads.append(Workload("illustrations", sorted(folder.iterdir()), args.n, folder))
    if "100mp" in chosen:
        folder = scratch / "big-in"
        _python(["-c", _BIG_JPEG, str(folder / "detail_10000x10000.jpg")])
        workloads.append(Workload("100mp", [folder / "detail_10000x10000.jpg"], 1, folder))
    return workloads


# A 10000x10000 JPEG that compresses like a sharp, detailed photo (about 25 MB at quality 90): each 500 px tile mixes
# grain, fine stripes and shapes, flipped and tinted so that no two neighbours repeat. Made in a child process, so
# that the memory it takes is not in the parent that forks the measured processes.
_BIG_JPEG = """
import random, sys
from pathlib import Path
from PIL import Image, ImageChops, ImageDraw
rng = random.Random(7)
tile = 500
def make_tile():
    grain = Image.merge("RGB", [Image.effect_noise((tile, tile), 40) for _ in range(3)])
    shapes = Image.new("RGB", (tile, tile), tuple(rng.randrange(256) for _ in range(3)))
    pen = ImageDraw.Draw(shapes)
    for x in range(0, tile, rng.choice((3, 4, 6))):
        pen.line([(x, 0), (x + rng.randrange(-40, 40), tile)], fill=tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(30):
        x, y, r = rng.randrange(tile), rng.randrange(tile), rng.randrange(5, 80)
        pen.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    return Image.blend(shapes, grain, 0.30)
tiles = [make_tile() for _ in range(6)]
canvas = Image.new("RGB", (10000, 10000))
ops = [None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180]
for y in range(0, 10000, tile):
    for x in range(0, 10000, tile):
        piece, op = rng.choice(tiles), rng.choice(ops)
        piece = piece if op is None else piece.transpose(op)
        tint = Image.new("RGB", (tile, tile), tuple(rng.randrange(200, 256) for _ in range(3)))
        canvas.paste(ImageChops.multiply(piece, tint), (x, y))
Path(sys.argv[1]).parent.mkdir(parents=True, exist_ok=True)
canvas.save(sys.argv[1], "JPEG", quality=90)
"""


def _python(arguments: list[str]) -> None:
    subprocess.run([sys.executable, *arguments], check=True, stdout=subprocess.DEVNULL)


def measure(workload: Workload, args: argparse.Namespace, sharp: bool, out: Path) -> None:
    """Alternate ours and sharp `--rounds` times (2-core ours after them), saving the first round's outputs."""
    images = len(workload.files) * workload.passes
    rounds = args.rounds if workload.name != "100mp" else max(3, args.rounds // 2)
    for round_index in range(rounds):
        save = round_index == 0
        sides = {"ours": ours_command(workload, out / "ours" if save else None, cores=1)}
        if sharp:
            sides["sharp"] = sharp_command(workload, out / "sharp" if save else None, args.sharp_script)
        if workload.name == "photos":
            sides["ours on 2 cores"] = ours_command(workload, None, cores=2)
        for side, command in sides.items():
            cpu, rss, wall = run_measured(command, images)
            workload.cpu.setdefault(side, []).append(cpu)
            workload.rss.setdefault(side, []).append(rss)
            workload.wall.setdefault(side, []).append(wall)
        print(
            f"{workload.name} round {round_index + 1}: "
            + ", ".join(f"{side} {values[-1]:.0f} ms" for side, values in workload.cpu.items()),
            flush=True,
        )
    if args.quality_script.is_file():
        workload.quality = compare_quality(
            args.quality_script, workload, out, sides=("ours", "sharp") if sharp else ("ours",)
        )


def ours_command(workload: Workload, save: Path | None, cores: int) -> list[str]:
    """This script as a worker process pinned to `cores` cores."""
    cpus = ",".join(str(core) for core in range(min(cores, os.cpu_count() or 1)))
    options = ["-n", str(workload.passes), *(["--save", str(save)] if save else [])]
    return ["taskset", "-c", cpus, sys.executable, __file__, "--worker", *options, *map(str, workload.files)]


def sharp_command(workload: Workload, save: Path | None, script: Path) -> list[str]:
    """The shared sharp script (sharp used well: one libvips thread) on core 0, over the workload's files."""
    options = ["-n", str(workload.passes), "--format", "webp", *(["--save", str(save)] if save else [])]
    return ["taskset", "-c", "0", "node", str(script), *options, *map(str, workload.files)]


def run_measured(command: list[str], images: int) -> tuple[float, float, float]:
    """CPU ms per image (user+sys of the whole process), its own peak RSS in MiB and its wall ms per image."""
    before = os.times()
    completed = subprocess.run(command, capture_output=True, text=True, check=True, env=_node_env())
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    rss = result["maxrss_mb"] if "maxrss_mb" in result else result["peak_rss_mib"]
    return cpu * 1000 / images, float(rss), (after.elapsed - before.elapsed) * 1000 / images


def compare_quality(script: Path, workload: Workload, out: Path, sides: tuple[str, ...]) -> list[str]:
    """Markdown rows per box: PSNR, SSIM, alpha PSNR and bytes of each side, the deltas and the verdict."""
    completed = subprocess.run(
        [sys.executable, str(script), "--originals", str(workload.originals), *(str(out / side) for side in sides)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {}
    for line in completed.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 10 and fields[2].isdigit():
            rows[fields[0], int(fields[2])] = fields
    lines = []
    for box in BOXES:
        if ("ours", box) not in rows or ("sharp", box) not in rows:
            continue
        ours, theirs = rows["ours", box], rows["sharp", box]
        delta_db = float(ours[3]) - float(theirs[3])
        delta_bytes = float(ours[8]) / float(theirs[8]) - 1
        # Higher PSNR at the same bytes is no loss: only falling behind sharp breaks equal quality.
        equal = delta_db >= -MAX_PSNR_DELTA_DB and abs(delta_bytes) <= MAX_BYTES_DELTA
        verdict = ("yes (better)" if delta_db > MAX_PSNR_DELTA_DB else "yes") if equal else "**no**"
        alpha = f"{ours[7]} / {theirs[7]}" if ours[7] != "-" else "-"
        lines.append(
            f"| {box} | {float(ours[3]):.2f} | {float(theirs[3]):.2f} | {delta_db:+.2f} | {ours[5]} / {theirs[5]} "
            f"| {alpha} | {float(ours[8]):,.0f} | {float(theirs[8]):,.0f} | {delta_bytes:+.1%} | "
            f"{verdict} |".replace(",", " ")
        )
    return lines


def report(workloads: list[Workload], args: argparse.Namespace, sharp: bool) -> list[str]:
    """The generated markdown: per workload, CPU and RSS medians with ratios, then the quality table."""
    lines = [
        f"Generated by `python benchmarks/bench_core.py --rounds {args.rounds} -n {args.n}` on {date.today()}, "
        f"sharp {SHARP_VERSION if sharp else '(not run)'}; {os.cpu_count()} CPUs, "
        "each measured process pinned to one core (the 2-core line excepted).",
        "",
    ]
    for workload in workloads:
        images = len(workload.files)
        lines += [
            f"### {workload.name}: {images} image{'s' if images > 1 else ''} × {workload.passes} per process",
            "",
            "| side | CPU ms / image (median) | rounds | wall ms / image | peak RSS MiB (median) |",
            "|---|---:|---|---:|---:|",
        ]
        for side, values in workload.cpu.items():
            rounds = ", ".join(f"{value:.0f}" for value in values)
            lines.append(
                f"| {side} | {statistics.median(values):.0f} | {rounds} | "
                f"{statistics.median(workload.wall[side]):.0f} | {statistics.median(workload.rss[side]):.0f} |"
            )
        if "sharp" in workload.cpu:
            ratios = [ours / theirs for ours, theirs in zip(workload.cpu["ours"], workload.cpu["sharp"], strict=True)]
            rss_ratio = statistics.median(workload.rss["ours"]) / statistics.median(workload.rss["sharp"])
            lines += [
                "",
                f"CPU per image, ours / sharp: **{statistics.median(ratios):.3f}** (median of {len(ratios)} "
                f"paired rounds; min {min(ratios):.3f}, max {max(ratios):.3f}); "
                f"peak RSS ours / sharp: {rss_ratio:.2f}.",
            ]
        if workload.quality:
            lines += [
                "",
                "| box | PSNR ours | PSNR sharp | Δ dB | SSIM ours / sharp | alpha PSNR ours / sharp "
                "| bytes ours | bytes sharp | Δ bytes | equal quality |",
                "|---:|---:|---:|---:|---|---|---:|---:|---:|---|",
                *workload.quality,
            ]
        lines.append("")
    return lines


def write_report(path: Path, lines: list[str], markers: str = MARKERS) -> None:
    """Replace what lies between the `markers` comments of `path` (appended when they are absent)."""
    begin, end = f"<!-- {markers}:begin -->", f"<!-- {markers}:end -->"
    text = path.read_text() if path.exists() else ""
    generated = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + generated + rest.split(end, 1)[1]
    else:
        text = text + ("\n" if text else "") + generated + "\n"
    path.write_text(text)


def work(files: list[Path], passes: int, save: Path | None) -> dict:
    """Worker side: the core's make_variants over every file `passes` times; the first pass's outputs saved."""
    sys.path.insert(0, str(REPO))
    from image_pipeline.imaging import make_variants
    from image_pipeline.options import Encoding, ImagingOptions, OutputFormat, Variant

    options = ImagingOptions(
        variants=tuple(Variant(str(box), box) for box in BOXES), encodings=(Encoding(OutputFormat.WEBP, QUALITY),)
    )
    if save:
        save.mkdir(parents=True, exist_ok=True)
    for index in range(passes):
        for path in files:
            processed = make_variants(path.read_bytes(), options)
            for variant in processed.variants if save and index == 0 else ():
                (save / f"{path.stem}_{variant.name}.webp").write_bytes(variant.primary.data)
    return {"peak_rss_mib": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM): getrusage's would include the parent's, which survives exec on Linux."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    options = parse_args()
    if options.worker:
        print(json.dumps(work(options.files, options.n, options.save)))
        sys.exit(0)
    sys.exit(main())
