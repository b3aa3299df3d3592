"""Cost of the cutout step: CPU and wall time per image and peak RSS, at one and two onnxruntime threads.

    python benchmarks/bench_cutout.py --model FILE [--family isnet|u2net] [--threads 1 2] [--rounds R] [FILES ...]

The model should have the real architecture and size (random weights cost the same as trained ones: see
docs for how one is exported); without --model a tiny test model is used and only the pre- and post-processing
is measured. FILES default to the shared photo corpus beside the repository (its *.jpg). Each thread count runs
in a fresh child process, so that its peak RSS (ru_maxrss: model, session and the largest image's step) is its
own. The step measured is the core's: the upright sRGB picture in, the cut-out at the working size out
(working copy, model input, inference, mask back, alpha); decoding and encoding are not in it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = REPO.parent / "shared" / "corpus" / "photos"


def child(model_path: str, family: str, threads: int, rounds: int, files: list[str]) -> None:
    """Measure in this process and print one JSON line."""
    sys.path.insert(0, str(REPO))
    from PIL import Image, ImageOps

    from image_pipeline.imaging.cutout import cut_out, load_matting
    from image_pipeline.options import CutoutFamily
    from tests.cutout_models import flat_background_model, spec_for

    kind = CutoutFamily(family)
    model = Path(model_path).read_bytes() if model_path else flat_background_model(kind)
    started = time.perf_counter()
    matting = load_matting(model, spec_for(model, kind), threads)
    load_s = time.perf_counter() - started
    after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    per_image = {}
    for file in files:
        with Image.open(file) as opened:
            picture = ImageOps.exif_transpose(opened).convert("RGB")
        cpu, wall = [], []
        for _ in range(rounds):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            cut_out(picture, matting, trim=False)
            cpu.append(time.process_time() - cpu_start)
            wall.append(time.perf_counter() - wall_start)
        per_image[Path(file).name] = {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"load_s": load_s, "rss_after_load_mib": after_load / 1024, "peak_rss_mib": peak / 1024,
                      "images": per_image}))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--model", default="", help="an ONNX file of the family (default: a tiny test model)")
    parser.add_argument("--family", default="isnet", choices=["isnet", "u2net"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    files = [str(path) for path in (arguments.files or sorted(SHARED_PHOTOS.glob("*.jpg")))]
    if arguments.child:
        child(arguments.model, arguments.family, arguments.threads[0], arguments.rounds, files)
        return 0
    model = Path(arguments.model).name if arguments.model else "tiny test model"
    print(f"cutout step, {arguments.family} ({model}), median of {arguments.rounds} rounds")
    for threads in arguments.threads:
        command = [sys.executable, __file__, "--child", "--family", arguments.family, "--model", arguments.model,
                   "--threads", str(threads), "--rounds", str(arguments.rounds), *files]  # fmt: skip
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        loaded, peak = result["rss_after_load_mib"], result["peak_rss_mib"]
        load_s = result["load_s"]
        print(f"threads {threads}: model load {load_s:.1f} s, RSS after load {loaded:.0f} MiB, peak {peak:.0f} MiB")
        for name, figures in result["images"].items():
            print(f"  {name:42} CPU {figures['cpu_s']:.2f} s  wall {figures['wall_s']:.2f} s")
        cpu = [figures["cpu_s"] for figures in result["images"].values()]
        print(f"  median CPU per image {statistics.median(cpu):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
