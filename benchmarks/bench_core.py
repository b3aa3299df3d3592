"""Benchmark the imaging core against a naive Pillow pipeline (and sharp, when given) on the same photos.

Workload: three WebP variants (2048, 1024, 256 px boxes, quality 80) per photo. Each pipeline runs in its own
process, alternating A B A B ..., so that peak RSS is its own and machine drift hits both alike; medians are quoted.

    python benchmarks/bench_core.py [--photos DIR] [-n PASSES] [--rounds R] [--sharp-script PATH]

Prints per-image CPU ms, wall ms, images/s and peak RSS for each pipeline, the ratios against the baselines,
the one-core vs two-core wall time of ours, and peak RSS on a synthesized 100 MP JPEG.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = REPO.parent / "shared" / "corpus" / "photos"
BOXES = (2048, 1024, 256)
QUALITY = 80


def main() -> int:
    """Run every pipeline `--rounds` times, alternating, and print the medians and ratios."""
    args = parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        photos = photo_set(args.photos, Path(scratch))
        print(f"photos: {len(photos)} from {photos[0].parent}; passes per run: {args.n}; rounds: {args.rounds}")
        runs: dict[str, list[dict]] = {}
        for _ in range(args.rounds):
            for name, command in pipelines(args, photos).items():
                runs.setdefault(name, []).append(run_worker(command))
        report(runs)
        big = synthesize_big_jpeg(Path(scratch) / "100mp.jpg")
        print("\n100 MP JPEG (10000x10000), peak RSS of the whole process:")
        for name in ("ours", "naive"):
            result = run_worker(worker_command(name, [big], 1, cores=1))
            print(f"  {name:6} {result['peak_rss_mib']:7.0f} MiB   cpu {result['cpu_ms_per_image']:7.0f} ms")
    return 0


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--photos", type=Path, help="folder of JPEG photos (default: the shared corpus, else generated)"
    )
    parser.add_argument("-n", type=int, default=3, help="passes over the photos in one process")
    parser.add_argument("--rounds", type=int, default=3, help="process runs of each pipeline, alternating")
    parser.add_argument("--sharp-script", type=Path, help="the sharp_variants.cjs script, to run sharp in the same run")
    parser.add_argument("--worker", choices=("ours", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--cores", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def photo_set(folder: Path | None, scratch: Path) -> list[Path]:
    """The JPEG photos to use: the given folder, the shared corpus beside the repo, or generated ones."""
    folder = folder or (SHARED_PHOTOS if SHARED_PHOTOS.is_dir() else None)
    if folder is not None:
        return sorted(folder.glob("*.jpg"))
    return [
        generate_photo(scratch / f"generated_{w}x{h}.jpg", (w, h))
        for w, h in ((4032, 3024), (3264, 2448), (6000, 4000))
    ]


def generate_photo(path: Path, size: tuple[int, int]) -> Path:
    """A photo-like JPEG: smooth gradients with noise, so that it compresses like a camera picture."""
    from PIL import Image

    noise = Image.effect_noise(size, 12).convert("RGB")
    gradient = Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.linear_gradient("L").rotate(90).resize(size),
        ],
    )
    Image.blend(noise, gradient, 0.7).save(path, "JPEG", quality=85)
    return path


def synthesize_big_jpeg(path: Path) -> Path:
    """A 100 MP JPEG (made in this parent process, so its memory is not counted against a pipeline)."""
    return generate_photo(path, (10000, 10000))


def pipelines(args: argparse.Namespace, photos: list[Path]) -> dict[str, list[str]]:
    """The commands to compare, by name."""
    commands = {
        "ours": worker_command("ours", photos, args.n, cores=1),
        "ours-2core": worker_command("ours", photos, args.n, cores=2),
        "naive": worker_command("naive", photos, args.n, cores=1),
    }
    if args.sharp_script:
        commands["sharp"] = ["taskset", "-c", "0", "node", str(args.sharp_script), "-n", str(args.n), *map(str, photos)]
    return commands


def worker_command(name: str, files: list[Path], passes: int, cores: int) -> list[str]:
    """This script, re-run as a worker process for one pipeline."""
    return [sys.executable, __file__, "--worker", name, "-n", str(passes), "--cores", str(cores), *map(str, files)]


def run_worker(command: list[str]) -> dict:
    """Run one pipeline process and read its JSON result (sharp's own JSON line is mapped to the same keys)."""
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if "impl" in result:
        return {
            "cpu_ms_per_image": result["mean_ms"],
            "wall_ms_per_image": result["mean_ms"],
            "images_per_s": result["img_per_s"],
            "peak_rss_mib": result["maxrss_mb"],
        }
    return result


def report(runs: dict[str, list[dict]]) -> None:
    """Print medians per pipeline and ratios of ours against each baseline."""
    medians = {
        name: {key: statistics.median(run[key] for run in results) for key in results[0]}
        for name, results in runs.items()
    }
    print(f"\n{'pipeline':12} {'cpu ms/img':>11} {'wall ms/img':>12} {'img/s':>7} {'peak MiB':>9}")
    for name, figures in medians.items():
        print(
            f"{name:12} {figures['cpu_ms_per_image']:11.0f} {figures['wall_ms_per_image']:12.0f} "
            f"{figures['images_per_s']:7.2f} {figures['peak_rss_mib']:9.0f}"
        )
    ours = medians["ours"]
    for baseline in ("naive", "sharp"):
        if baseline in medians:
            ratio = ours["cpu_ms_per_image"] / medians[baseline]["cpu_ms_per_image"]
            print(f"CPU per image, ours / {baseline}: {ratio:.3f}")
    two_core = medians["ours-2core"]["wall_ms_per_image"] / ours["wall_ms_per_image"]
    print(f"wall per image, ours on 2 cores / ours on 1 core: {two_core:.3f}")
    print(json.dumps({"medians": medians}))


def work(name: str, files: list[Path], passes: int, cores: int) -> dict:
    """Worker side: process every file `passes` times on `cores` processors and measure it."""
    os.sched_setaffinity(0, set(range(min(cores, os.cpu_count() or 1))))
    datas = [path.read_bytes() for path in files]
    process = ours_pipeline(cores) if name == "ours" else naive_pipeline
    process(datas[0])
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in range(passes):
        for data in datas:
            process(data)
    count = passes * len(datas)
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    return {
        "cpu_ms_per_image": cpu * 1000 / count,
        "wall_ms_per_image": wall * 1000 / count,
        "images_per_s": count / wall,
        "peak_rss_mib": peak_rss_mib(),
    }


def peak_rss_mib() -> float:
    """This process's own peak RSS; getrusage would also count the parent's peak, which survives exec on Linux."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours_pipeline(cores: int):
    """The imaging core with the benchmark's three boxes, encoding on `cores` threads."""
    sys.path.insert(0, str(REPO))
    from image_pipeline.imaging import make_variants
    from image_pipeline.options import Encoding, ImagingOptions, OutputFormat, Variant

    options = ImagingOptions(
        variants=tuple(Variant(f"v{box}", box) for box in BOXES),
        encodings=(Encoding(OutputFormat.WEBP, QUALITY),),
        encode_threads=cores,
    )
    return lambda data: make_variants(data, options)


def naive_pipeline(data: bytes) -> list[bytes]:
    """What most code does: full decode, exif_transpose, then thumbnail and encode per size."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    outputs = []
    for box in BOXES:
        copy = image.copy()
        copy.thumbnail((box, box), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        copy.save(buffer, "WEBP", quality=QUALITY, method=4)
        outputs.append(buffer.getvalue())
    return outputs


if __name__ == "__main__":
    options = parse_args()
    if options.worker:
        print(json.dumps(work(options.worker, options.files, options.n, options.cores)))
        sys.exit(0)
    sys.exit(main())
