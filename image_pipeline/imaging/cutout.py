"""Background removal: a content step that makes the subject opaque and everything else transparent.

It runs on a working copy whose longest edge is at most WORKING_EDGE (bounded memory whatever the source), so the
variants are made from that copy: one larger than it comes out at the working size. The model is loaded by
`load_matting`, which verifies the file's checksum before anything else and is the only way in to numpy and
onnxruntime (imported there, so that routes without a cutout never load them).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from PIL import Image, ImageChops

from image_pipeline.errors import ModelUnusable
from image_pipeline.imaging.geometry import fit_inside
from image_pipeline.imaging.pipeline import ContentStep, Stepped
from image_pipeline.imaging.resample import downscale
from image_pipeline.options import CutoutSpec
from image_pipeline.results import CutoutFacts

WORKING_EDGE = 2048
# A pixel counts as subject (for the coverage figure) from half opacity up.
SUBJECT_ALPHA = 128
# Below this share of subject pixels the model found nothing worth showing: the uncut image is used instead.
MIN_COVERAGE = 0.005
# Trimming keeps every pixel at least this opaque: fainter values are the model's noise, not hair or glow.
TRIM_ALPHA = 16
# Trimming leaves this share of the subject box's longer side around it.
TRIM_MARGIN = 0.02
NO_SUBJECT = CutoutFacts(applied=False, reason="no_subject")


class Matting(Protocol):
    """A loaded background-removal model."""

    @property
    def label(self) -> str:
        """The model as the manifest names it (CutoutSpec.label)."""

    def predict(self, picture: Image.Image) -> Image.Image | None:
        """The subject mask ("L") at the picture's size, or None when the model's output is constant (no subject)."""


def load_matting(model: bytes, spec: CutoutSpec, threads: int) -> Matting:
    """Verify the model file against the spec's sha256, then load it; ModelUnusable (and never run) if either fails."""
    digest = hashlib.sha256(model).hexdigest()
    if digest != spec.sha256.lower():
        raise ModelUnusable(f"cutout model {spec.label}: sha256 mismatch (the file's is {digest})")
    from image_pipeline.imaging.cutout_model import OnnxMatting  # numpy and onnxruntime: only for a cutout

    return OnnxMatting(model, spec, threads)


def cutout_step(matting: Matting, trim: bool) -> ContentStep:
    """The content step removing the background with `matting` (and cropping to the subject if `trim`)."""

    def step(picture: Image.Image) -> Stepped:
        return cut_out(picture, matting, trim)

    return step


def cut_out(picture: Image.Image, matting: Matting, trim: bool) -> Stepped:
    """The picture with the mask as (or within its existing) alpha, at the working size; or, with no subject, as is."""
    working = _working_copy(picture)
    mask = matting.predict(working.convert("RGB"))
    if mask is None:
        return Stepped(picture, NO_SUBJECT)
    alpha = ImageChops.darker(working.getchannel("A"), mask) if working.mode == "RGBA" else mask
    coverage = _coverage(alpha)
    if coverage < MIN_COVERAGE:
        return Stepped(picture, NO_SUBJECT)
    cut = working.convert("RGBA")
    cut.putalpha(alpha)
    if trim:
        cut = _trimmed(cut, alpha)
    return Stepped(cut, CutoutFacts(applied=True, model=matting.label, coverage=round(coverage, 4)))


def _working_copy(picture: Image.Image) -> Image.Image:
    size = fit_inside(picture.size, (WORKING_EDGE, WORKING_EDGE))
    if size == picture.size:
        return picture
    return downscale(picture, size)


def _coverage(alpha: Image.Image) -> float:
    """The share of pixels at least SUBJECT_ALPHA opaque."""
    histogram = alpha.histogram()
    return sum(histogram[SUBJECT_ALPHA:]) / (alpha.width * alpha.height)


def _trimmed(cut: Image.Image, alpha: Image.Image) -> Image.Image:
    """`cut` cropped to the box of its visible pixels plus TRIM_MARGIN of the box's longer side (within the image)."""
    box = alpha.point(lambda value: 255 if value >= TRIM_ALPHA else 0).getbbox()
    if box is None:
        return cut
    left, top, right, bottom = box
    margin = round(TRIM_MARGIN * max(right - left, bottom - top))
    return cut.crop(
        (max(0, left - margin), max(0, top - margin), min(cut.width, right + margin), min(cut.height, bottom + margin))
    )
