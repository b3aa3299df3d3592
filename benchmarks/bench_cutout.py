"""Cost of the cutout step: CPU and wall time per image and peak RSS, ours and (optionally) rembg's, same model file.

    python benchmarks/bench_cutout.py --model FILE [--family isnet|u2net] [--threads 1 2] [--rounds R]
        [--rembg-python PYTHON] [--core N] [FILES ...]

The model should have the real architecture and size (random weights cost the same as trained ones: see
docs/cutout.md for how one is exported); without --model a tiny test model is used and only the pre- and
post-processing is measured. FILES default to the shared photo corpus beside the repository (its *.jpg).

Every round runs each thread count in fresh child processes: ours and, with --rembg-python (the python of an
environment made from benchmarks/requirements-rembg.txt), rembg's `remove()` with its own session for the family
(isnet-anime, u2net) reading the same model file, which is only linked where rembg looks for it, so nothing is ever
downloaded. The two alternate, and which goes first swaps every round. A child loads the model, makes two untimed
steps on the first file (onnxruntime's set-up runs, see UNTIMED_STEPS), then times one step per file: CPU (user +
sys of the whole process, every thread) and wall. Its peak RSS is the child's ru_maxrss, collected by this process
when it ends (imports, model and every step included). `--core N` pins the children to CPU N (one-thread runs only).

The step measured starts from the same decoded, upright sRGB picture on both sides; decoding and encoding are not
in it. Ours is the core's step (working copy, model input, inference, mask back, alpha); rembg's is `remove()` with
its defaults (its own orientation fix, the mask at the picture's full size, a composite onto a transparent image).
Prints per-image medians over the rounds, each round's figures, and the ratios ours / rembg's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = REPO.parent / "shared" / "corpus" / "photos"
# rembg's session name for each family (the model file is linked under this name).
REMBG_NAMES = {"isnet": "isnet-anime", "u2net": "u2net"}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
OURS, REMBG = "ours", "rembg"
# onnxruntime sets itself up in a session's first run and, where memory patterns are on (rembg's default), lays its
# planned buffers out in the second: 0.8-1.0 s more CPU once, for a 1024 x 1024 ISNet. Steady state is timed.
UNTIMED_STEPS = 2
PROCESS_FIGURES = ("peak_rss_mib", "rss_after_load_mib", "load_s", "process_cpu_s")


def child(side: str, model_path: str, family: str, threads: int, core: int | None, files: list[str]) -> None:
    """Measure one side in this process and print one JSON line (its peak RSS is read by the parent)."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    import resource

    step, load_s, version = _ours(model_path, family, threads) if side == OURS else _rembg(family, threads)
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    warm_up = _picture(files[0])
    for _ in range(UNTIMED_STEPS):
        step(warm_up)
    del warm_up
    images = {}
    for file in files:
        picture = _picture(file)
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        step(picture)
        images[Path(file).name] = {"cpu_s": time.process_time() - cpu_start, "wall_s": time.perf_counter() - wall_start}
        del picture
    print(json.dumps({"version": version, "load_s": load_s, "rss_after_load_mib": rss_after_load, "images": images}))


def _picture(file: str):
    """The decoded, upright sRGB picture both sides start from."""
    from PIL import Image, ImageOps

    with Image.open(file) as opened:
        return ImageOps.exif_transpose(opened).convert("RGB")


def _ours(model_path: str, family: str, threads: int):
    sys.path.insert(0, str(REPO))
    import onnxruntime

    from image_pipeline.imaging.cutout import cut_out, load_matting
    from image_pipeline.options import CutoutFamily
    from tests.cutout_models import flat_background_model, spec_for

    kind = CutoutFamily(family)
    started = time.perf_counter()
    # As the function does: the file's bytes are read, verified and loaded, then dropped.
    model = Path(model_path).read_bytes() if model_path else flat_background_model(kind)
    matting = load_matting(model, spec_for(model, kind), threads)
    del model
    load_s = time.perf_counter() - started
    return (lambda picture: cut_out(picture, matting, trim=False)), load_s, f"onnxruntime {onnxruntime.__version__}"


def _rembg(family: str, threads: int):
    from importlib.metadata import version

    import onnxruntime
    from rembg import new_session, remove

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    started = time.perf_counter()
    session = new_session(REMBG_NAMES[family], sess_opts=options)
    load_s = time.perf_counter() - started
    versions = f"rembg {version('rembg')}, onnxruntime {onnxruntime.__version__}"
    return (lambda picture: remove(picture, session=session)), load_s, versions


def run_child(python: str, side: str, arguments: argparse.Namespace, threads: int, files: list[str], home: Path):
    """One child; its JSON line plus its peak RSS (MiB) and its whole-process CPU (s), as the kernel counted them."""
    core = [] if arguments.core is None else ["--core", str(arguments.core)]
    command = [python, __file__, "--child", side, "--family", arguments.family, "--model", arguments.model,
               "--threads", str(threads), *core, "--", *files]  # fmt: skip
    environment = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    if side == REMBG:
        environment.update({"U2NET_HOME": str(home), "MODEL_CHECKSUM_DISABLED": "1"})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = subprocess.Popen(command, env=environment, stdout=out, stderr=err)
        _, status, usage = os.wait4(started.pid, 0)
        started.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if started.returncode != 0:
            sys.exit(f"{side} child failed ({started.returncode}):\n{err.read()}")
        result = json.loads(out.read().strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def summary(results: list[dict]) -> dict:
    """Medians over the rounds: per image CPU and wall, and each whole-process figure."""
    images = {
        name: {key: statistics.median(result["images"][name][key] for result in results) for key in ("cpu_s", "wall_s")}
        for name in results[0]["images"]
    }
    figures = {key: statistics.median(result[key] for result in results) for key in PROCESS_FIGURES}
    figures["cpu_per_image_s"] = statistics.median(image["cpu_s"] for image in images.values())
    return {"images": images, **figures}


def report(threads: int, sides: dict[str, list[dict]]) -> None:
    """Print one thread count's figures: per image, per process, each round's, and the ratios ours / rembg's."""
    medians = {side: summary(results) for side, results in sides.items()}
    compared = REMBG in medians

    def ratio(pick: Callable[[dict], float]) -> str:
        return f"   ours / rembg {pick(medians[OURS]) / pick(medians[REMBG]):.3f}" if compared else ""

    print(f"threads {threads}")
    for side, figures in medians.items():
        load, after_load, process = figures["load_s"], figures["rss_after_load_mib"], figures["process_cpu_s"]
        print(f"  {side:5} {sides[side][0]['version']}: model load {load:.1f} s, RSS after load {after_load:.0f} MiB, "
              f"whole process CPU {process:.1f} s")  # fmt: skip
    print(f"  {'CPU / wall per image':42}" + "".join(f"{side:>22}" for side in medians))
    for name in medians[OURS]["images"]:
        cells = "".join(
            f"{figures['images'][name]['cpu_s'] * 1000:10.0f} /{figures['images'][name]['wall_s'] * 1000:6.0f} ms"
            for figures in medians.values()
        )
        print(f"  {name:42}{cells}{ratio(lambda figures: figures['images'][name]['cpu_s'])}")  # noqa: B023
    cells = "".join(f"{figures['cpu_per_image_s'] * 1000:19.0f} ms" for figures in medians.values())
    print(f"  {'median CPU per image':42}{cells}{ratio(lambda figures: figures['cpu_per_image_s'])}")
    cells = "".join(f"{figures['peak_rss_mib']:18.0f} MiB" for figures in medians.values())
    print(f"  {'peak RSS':42}{cells}{ratio(lambda figures: figures['peak_rss_mib'])}")
    for index in range(len(sides[OURS])):
        cells = ", ".join(
            f"{side} CPU per image {summary([results[index]])['cpu_per_image_s'] * 1000:.0f} ms, "
            f"peak RSS {results[index]['peak_rss_mib']:.0f} MiB"
            for side, results in sides.items()
        )
        print(f"  round {index + 1}: {cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--model", default="", help="an ONNX file of the family (default: a tiny test model)")
    parser.add_argument("--family", default="isnet", choices=["isnet", "u2net"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3, help="fresh child processes per side and thread count")
    parser.add_argument("--rembg-python", default="", help="python of an environment with rembg: measure it too")
    parser.add_argument("--core", type=int, default=None, help="pin the children to this CPU (one thread only)")
    parser.add_argument("--child", choices=[OURS, REMBG], help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    files = [str(path) for path in (arguments.files or sorted(SHARED_PHOTOS.glob("*.jpg")))]
    if not files:
        parser.error(f"no FILES given and no photo corpus at {SHARED_PHOTOS}")
    if arguments.child:
        child(arguments.child, arguments.model, arguments.family, arguments.threads[0], arguments.core, files)
        return 0
    if arguments.core is not None and arguments.threads != [1]:
        parser.error("--core pins a child to one CPU: use it with --threads 1")
    sides = {OURS: sys.executable} | ({REMBG: arguments.rembg_python} if arguments.rembg_python else {})
    model = Path(arguments.model).name if arguments.model else "tiny test model"
    print(f"cutout step, {arguments.family} ({model}), {len(files)} files, {arguments.rounds} rounds of fresh "
          f"processes ({', alternating with '.join(sides)}), medians")  # fmt: skip
    with tempfile.TemporaryDirectory() as temporary:
        home = Path(temporary)
        if REMBG in sides:
            if not arguments.model:
                parser.error("--rembg-python needs --model (rembg reads the model from a file)")
            (home / f"{REMBG_NAMES[arguments.family]}.onnx").symlink_to(Path(arguments.model).resolve())
        for threads in arguments.threads:
            results: dict[str, list[dict]] = {side: [] for side in sides}
            for index in range(arguments.rounds):
                order = list(sides) if index % 2 == 0 else list(reversed(sides))
                for side in order:
                    results[side].append(run_child(sides[side], side, arguments, threads, files, home))
            report(threads, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
