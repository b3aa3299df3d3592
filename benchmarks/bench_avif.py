"""AVIF at equal quality: our encoder settings (Pillow's AVIF plugin, libavif + aom) against sharp's AVIF defaults.

Workload: per photo, decode, apply the EXIF orientation, three variants fitting 2048, 1024 and 256 px boxes
(never upscaled), each encoded as AVIF. Ours and sharp run as whole processes pinned to one core
(`taskset -c 0`), alternating ours, sharp, ours, sharp ...; CPU is user+sys of each whole process, and the
figures quoted are medians over the rounds and the median of the round-by-round ratio ours / sharp.

    python benchmarks/bench_avif.py [FILES ...] [--rounds R] [-n PASSES]
        [--sharp-script PATH/sharp_variants.cjs] [--quality-script PATH/quality.py] [--out DIR]
        [--quality Q] [--speed S] [--subsampling 4:4:4|4:2:0] [--codec aom] [--max-threads T]
        [--advanced KEY=VALUE ...] [--sharp-quality 50] [--sharp-effort 4]

FILES default to the shared photo corpus beside the repository (its *.jpg). sharp needs `node` and a
node_modules with sharp on NODE_PATH (see the shared bench README); without them, or without --sharp-script,
only our side is measured and the script says so. With --quality-script, each side's outputs of the first round
are saved (under --out, default a temporary folder) and compared with the shared quality.py: PSNR, SSIM and mean
bytes per box for both sides, then the per-box deltas ours - sharp (PSNR dB, bytes %) against the equal-quality
bounds (within 0.3 dB and 3 %).

The defaults are the chosen settings (see docs/performance-avif.md): they reproduce sharp's AVIF defaults
(quality 50, effort 4, 4:4:4) at a fraction of its CPU. Our side is a plain Pillow pipeline with the core's
resize steps (JPEG draft decode never below the largest variant, the core's `downscale` from the next larger
variant, ICC to sRGB);
the AVIF encode is where the time goes, so this measures the encoder settings, not the rest of the core.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = REPO.parent / "shared" / "corpus" / "photos"
BOXES = (2048, 1024, 256)
MAX_PSNR_DELTA_DB = 0.3
MAX_BYTES_DELTA = 0.03
# aom's rectangular partition search is most of speed 5's time on photos and buys little at this quality.
CHOSEN_ADVANCED = ("enable-rect-partitions=0",)


def main() -> int:
    """Run both sides `--rounds` times, alternating, then print CPU medians, ratios and the quality comparison."""
    args = parse_args()
    files = args.files or sorted(SHARED_PHOTOS.glob("*.jpg"))
    if not files:
        sys.exit("no photos: pass files, or keep the shared corpus beside the repository")
    sharp = sharp_command(args, files)
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        print(f"photos: {len(files)}; passes per run: {args.n}; rounds: {args.rounds}; ours: {encoder_kwargs(args)}")
        cpu: dict[str, list[float]] = {"ours": [], "sharp": []}
        for round_index in range(args.rounds):
            save = round_index == 0 and args.quality_script is not None
            cpu["ours"].append(timed(ours_command(args, files, out / "ours" if save else None), len(files) * args.n))
            if sharp:
                command = sharp + (["--save", str(out / "sharp")] if save else [])
                cpu["sharp"].append(timed(command, len(files) * args.n))
            print(f"round {round_index + 1}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in cpu.items() if v))
        report_cpu(cpu)
        if args.quality_script:
            report_quality(args.quality_script, out, sides=("ours", "sharp") if sharp else ("ours",))
    return 0


def parse_args() -> argparse.Namespace:
    """Command-line options; the encoder defaults are the chosen settings."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="photos (default: the shared corpus' *.jpg)")
    parser.add_argument("-n", type=int, default=1, help="passes over the photos in one process")
    parser.add_argument("--rounds", type=int, default=3, help="process runs of each side, alternating")
    parser.add_argument("--sharp-script", type=Path, help="the shared sharp_variants.cjs (needs node and sharp)")
    parser.add_argument("--quality-script", type=Path, help="the shared quality.py, to compare the outputs")
    parser.add_argument("--out", type=Path, help="where the first round's outputs go (default: a temporary folder)")
    parser.add_argument("--quality", type=int, default=50, help="Pillow AVIF quality (0-100)")
    parser.add_argument("--speed", type=int, default=5, help="libavif speed (0 slowest - 10 fastest)")
    parser.add_argument("--subsampling", default="4:4:4", help="chroma subsampling, 4:4:4 as sharp's default")
    parser.add_argument("--codec", default="aom", help="libavif encoder codec")
    parser.add_argument("--max-threads", type=int, default=1, help="libavif encoder threads")
    parser.add_argument(
        "--advanced",
        action="append",
        metavar="KEY=VALUE",
        help="aom option passed through libavif, repeatable; replaces the chosen "
        f"{' '.join(CHOSEN_ADVANCED)}; 'none' for aom's own defaults",
    )
    parser.add_argument("--sharp-quality", type=int, default=50, help="sharp's AVIF quality (its default 50)")
    parser.add_argument("--sharp-effort", type=int, default=4, help="sharp's AVIF effort (its default 4)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def encoder_kwargs(args: argparse.Namespace) -> dict:
    """The Pillow save keyword arguments for AVIF under test."""
    kwargs: dict = {
        "quality": args.quality,
        "speed": args.speed,
        "subsampling": args.subsampling,
        "codec": args.codec,
        "max_threads": args.max_threads,
    }
    advanced = advanced_options(args)
    if advanced:
        kwargs["advanced"] = tuple(tuple(item.split("=", 1)) for item in advanced)
    return kwargs


def advanced_options(args: argparse.Namespace) -> list[str]:
    """The aom options as KEY=VALUE: the chosen ones unless --advanced was given ('none': no options)."""
    if args.advanced is None:
        return list(CHOSEN_ADVANCED)
    return [item for item in args.advanced if item != "none"]


def ours_command(args: argparse.Namespace, files: list[Path], save: Path | None) -> list[str]:
    """This script as a worker process on core 0, with the same encoder options."""
    options = [
        "--quality",
        str(args.quality),
        "--speed",
        str(args.speed),
        "--subsampling",
        args.subsampling,
        "--codec",
        args.codec,
        "--max-threads",
        str(args.max_threads),
        "-n",
        str(args.n),
    ]
    options += [f"--advanced={item}" for item in advanced_options(args) or ["none"]]
    options += ["--save", str(save)] if save else []
    return ["taskset", "-c", "0", sys.executable, __file__, "--worker", *options, *map(str, files)]


def sharp_command(args: argparse.Namespace, files: list[Path]) -> list[str] | None:
    """sharp's AVIF run on core 0, or None (with the reason printed) when it cannot run here."""
    if args.sharp_script is None:
        print("sharp: skipped (no --sharp-script)")
        return None
    if shutil.which("node") is None:
        print("sharp: skipped (node is not installed)")
        return None
    probe = subprocess.run(["node", "-e", "require('sharp')"], capture_output=True)
    if probe.returncode != 0:
        print("sharp: skipped (node cannot load sharp; set NODE_PATH to a node_modules that has it)")
        return None
    return [
        "taskset",
        "-c",
        "0",
        "node",
        str(args.sharp_script),
        "--format",
        "avif",
        "-n",
        str(args.n),
        "--quality",
        str(args.sharp_quality),
        "--method",
        str(args.sharp_effort),
        *map(str, files),
    ]


def timed(command: list[str], images: int) -> float:
    """CPU (user+sys) of the whole process per image, in ms, from the kernel's accounting of the child."""
    before = _children_cpu()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return (_children_cpu() - before) * 1000 / images


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def report_cpu(cpu: dict[str, list[float]]) -> None:
    """Medians per side, and the median of the round-by-round ratio ours / sharp."""
    print(f"\n{'side':8}{'cpu ms/img (median)':>22}  rounds")
    for side, values in cpu.items():
        if values:
            print(f"{side:8}{statistics.median(values):>22.0f}  {', '.join(f'{v:.0f}' for v in values)}")
    if cpu["sharp"]:
        ratios = [ours / sharp for ours, sharp in zip(cpu["ours"], cpu["sharp"], strict=True)]
        print(f"CPU per image, ours / sharp: {statistics.median(ratios):.3f} (median of {len(ratios)} paired rounds)")


def report_quality(quality_script: Path, out: Path, sides: tuple[str, ...]) -> None:
    """Run the shared quality.py over the saved outputs and print the per-box deltas ours - sharp."""
    completed = subprocess.run(
        [sys.executable, str(quality_script), *(str(out / side) for side in sides)],
        capture_output=True,
        text=True,
        check=True,
    )
    print("\n" + completed.stdout.rstrip())
    rows = {
        (fields[0], int(fields[2])): (float(fields[3]), float(fields[8]))
        for fields in (line.split() for line in completed.stdout.splitlines()[1:])
        if len(fields) >= 9
    }
    if "sharp" not in sides:
        return
    print(f"\n{'box':>6}{'PSNR ours-sharp dB':>20}{'bytes ours/sharp-1':>20}  equal quality")
    for box in BOXES:
        if ("ours", box) in rows and ("sharp", box) in rows:
            (psnr_ours, bytes_ours), (psnr_sharp, bytes_sharp) = rows[("ours", box)], rows[("sharp", box)]
            delta_db, delta_bytes = psnr_ours - psnr_sharp, bytes_ours / bytes_sharp - 1
            ok = abs(delta_db) <= MAX_PSNR_DELTA_DB and abs(delta_bytes) <= MAX_BYTES_DELTA
            print(f"{box:>6}{delta_db:>+20.2f}{delta_bytes:>+19.1%}  {'yes' if ok else 'NO'}")


def work(args: argparse.Namespace) -> None:
    """Worker side: make every photo's three AVIF variants `-n` times; save the first pass's when asked."""
    sys.path.insert(0, str(REPO))  # the core's downscale, imported by `variants`
    datas = [(path.stem, path.read_bytes()) for path in args.files]
    kwargs = encoder_kwargs(args)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    for index in range(args.n):
        for stem, data in datas:
            for box, blob in variants(data, kwargs):
                if args.save and index == 0:
                    (args.save / f"{stem}_{box}.avif").write_bytes(blob)


def variants(data: bytes, kwargs: dict) -> list[tuple[int, bytes]]:
    """The core's resize steps: draft decode, to sRGB, its downscale from the next larger size, orient, encode."""
    from PIL import Image, ImageCms

    from image_pipeline.imaging.resample import downscale

    transpose = Image.Transpose
    transpositions = {
        2: transpose.FLIP_LEFT_RIGHT,
        3: transpose.ROTATE_180,
        4: transpose.FLIP_TOP_BOTTOM,
        5: transpose.TRANSPOSE,
        6: transpose.ROTATE_270,
        7: transpose.TRANSVERSE,
        8: transpose.ROTATE_90,
    }

    image = Image.open(io.BytesIO(data))
    sizes = [fit_inside(image.size, box) for box in BOXES]
    image.draft("RGB", sizes[0])
    orientation = image.getexif().get(0x0112, 1)
    profile = image.info.get("icc_profile")
    picture = image.convert("RGB")
    if profile:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(picture, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        picture = converted or picture
    outputs = []
    for box, size in zip(BOXES, sizes, strict=True):
        if picture.size != size:
            picture = downscale(picture, size)
        transposition = transpositions.get(orientation)
        upright = picture if transposition is None else picture.transpose(transposition)
        buffer = io.BytesIO()
        upright.save(buffer, "AVIF", **kwargs)
        outputs.append((box, buffer.getvalue()))
    return outputs


def fit_inside(size: tuple[int, int], box: int) -> tuple[int, int]:
    """Fit `size` in a `box` square keeping its aspect; never larger than `size`."""
    width, height = size
    scale = min(1.0, box / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


if __name__ == "__main__":
    options = parse_args()
    if options.worker:
        work(options)
        print(json.dumps({"done": True}))
        sys.exit(0)
    sys.exit(main())
