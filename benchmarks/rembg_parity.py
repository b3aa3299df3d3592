"""Mask parity with rembg: rembg's own named sessions and our cutout model, same images, same model files.

No real weights are downloaded: for each family a tiny model (tests/cutout_models.py) is written where rembg looks
for the named model (`$U2NET_HOME/isnet-anime.onnx`, `$U2NET_HOME/u2netp.onnx`) with MODEL_CHECKSUM_DISABLED set,
so rembg's session classes (DisSession, U2netpSession) run their own pre- and post-processing on it. Two models per
family: one with masks of every level (a weighted sum of the channels) and one with a subject on a flat background.
rembg runs in its own environment (it is never a dependency of the project):

    python -m venv /some/rembg-venv && /some/rembg-venv/bin/pip install -r benchmarks/requirements-rembg.txt
    python benchmarks/rembg_parity.py --rembg-python /some/rembg-venv/bin/python [FILES ...]

FILES default to synthetic pictures (portrait, landscape, with alpha, grey, black) plus the shared photo corpus
beside the repository when it is there. Prints one line per model, image and the largest mask difference in 8-bit
levels (a constant model output, where rembg divides by zero and ours finds no subject, is listed, not compared),
the time rembg's import took, and exits 1 if any difference exceeds 1 level.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
SHARED_PHOTOS = REPO.parent / "shared" / "corpus" / "photos"
sys.path.insert(0, str(REPO))

from image_pipeline.imaging.cutout import load_matting  # noqa: E402
from image_pipeline.options import CutoutFamily  # noqa: E402
from tests.cutout_models import flat_background_model, graded_model, spec_for  # noqa: E402

# rembg's session name for each family's model file (both names of a family share the session code).
REMBG_NAMES = {CutoutFamily.ISNET: "isnet-anime", CutoutFamily.U2NET: "u2netp"}
TOLERANCE = 1  # levels out of 255

REMBG_SIDE = """
import json, os, sys, time
started = time.perf_counter()
from rembg import new_session
imported = time.perf_counter() - started
from PIL import Image
name, images, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
session = new_session(name)
for index, path in enumerate(images):
    with Image.open(path) as image:
        session.predict(image.convert("RGB"))[0].save(os.path.join(out, f"{index}.png"))
print(json.dumps({"import_s": imported}))
"""


def synthetic_images(folder: Path) -> list[Path]:
    """Shapes on flat backgrounds in several sizes and modes, including the edge cases of the normalisation."""
    pictures = {
        "portrait": _shape((600, 900), "white", (220, 30, 30)),
        "landscape": _shape((1500, 1000), (40, 200, 60), (255, 240, 10)),
        "small": _shape((200, 120), "white", (10, 10, 200)),
        "dim": _shape((640, 480), (60, 60, 60), (120, 100, 90)),  # brightest value far below 255
        "black": Image.new("RGB", (300, 300), "black"),  # rembg's guarded division by the maximum
    }
    paths = []
    for name, picture in pictures.items():
        path = folder / f"{name}.png"
        picture.save(path)
        paths.append(path)
    return paths


def _shape(size: tuple[int, int], background: object, colour: tuple[int, int, int]) -> Image.Image:
    picture = Image.new("RGB", size, background)  # type: ignore[arg-type]
    width, height = size
    draw = ImageDraw.Draw(picture)
    draw.ellipse((width * 0.2, height * 0.25, width * 0.7, height * 0.8), fill=colour)
    draw.rectangle((width * 0.6, height * 0.1, width * 0.9, height * 0.3), fill=(colour[2], colour[0], colour[1]))
    return picture


def rembg_masks(python: str, name: str, model: bytes, images: list[Path], out: Path) -> float:
    """Run rembg's named session on every image; the masks land in `out` as N.png. Returns rembg's import time."""
    home = out / "u2net-home"
    home.mkdir(parents=True)
    (home / f"{name}.onnx").write_bytes(model)
    environment = {"U2NET_HOME": str(home), "MODEL_CHECKSUM_DISABLED": "1", "PATH": "/usr/bin:/bin"}
    command = [python, "-c", REMBG_SIDE, name, json.dumps([str(path) for path in images]), str(out)]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        sys.exit(f"rembg failed:\n{finished.stderr}")
    return float(json.loads(finished.stdout.strip().splitlines()[-1])["import_s"])


def largest_difference(ours: Image.Image, theirs: Image.Image) -> int:
    """The largest per-pixel difference of two L masks (their sizes must agree)."""
    if ours.size != theirs.size or ours.mode != theirs.mode:
        return 255
    return max(abs(a - b) for a, b in zip(ours.tobytes(), theirs.tobytes(), strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--rembg-python", required=True, help="python of an environment with rembg installed")
    arguments = parser.parse_args()
    worst = 0
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        images = synthetic_images(folder)
        images += arguments.files or sorted(SHARED_PHOTOS.glob("*.jpg"))
        for family, name in REMBG_NAMES.items():
            for kind, model in (("graded", graded_model(family)), ("flat", flat_background_model(family))):
                out = folder / f"{name}-{kind}"
                started = time.perf_counter()
                import_s = rembg_masks(arguments.rembg_python, name, model, images, out)
                rembg_s = time.perf_counter() - started
                matting = load_matting(model, spec_for(model, family), threads=1)
                for index, path in enumerate(images):
                    with Image.open(path) as image:
                        ours = matting.predict(image.convert("RGB"))
                    if ours is None:
                        # rembg divides by zero here and casts NaN to 8 bits; ours reports no subject instead.
                        print(f"{name:12} {kind:7} {path.name:40} constant model output: no subject (not compared)")
                        continue
                    with Image.open(out / f"{index}.png") as theirs:
                        difference = largest_difference(ours, theirs.convert("L"))
                    worst = max(worst, difference)
                    print(f"{name:12} {kind:7} {path.name:40} max difference {difference}")
                print(f"{name:12} {kind:7} rembg import {import_s:.1f} s, rembg run (with import) {rembg_s:.1f} s")
    verdict = "PASS" if worst <= TOLERANCE else "FAIL"
    print(f"{verdict}: largest mask difference {worst} level(s) out of 255 (allowed {TOLERANCE})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
