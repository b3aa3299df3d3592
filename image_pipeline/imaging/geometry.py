"""Sizes, crops, orientation and high-quality downscaling.

A variant is planned as a `Rendition`: a region of the upright picture, given as fractions of it so that the same
plan applies to the full-size picture, to a JPEG decoded at a reduced scale and to any larger rendition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from PIL import Image

from image_pipeline.imaging.resample import REDUCING_GAP, downscale
from image_pipeline.options import Fit, Gravity, Variant

# EXIF orientation value -> the transposition that displays the stored pixels upright.
_TRANSPOSITIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Where a cover crop sits on each axis, in halves of the picture left over: 0 keeps the left (top) edge, 1 centres,
# 2 keeps the right (bottom) edge.
_ANCHORS: Mapping[Gravity, tuple[int, int]] = MappingProxyType(
    {
        Gravity.CENTRE: (1, 1),
        Gravity.NORTH: (1, 0),
        Gravity.NORTHEAST: (2, 0),
        Gravity.EAST: (2, 1),
        Gravity.SOUTHEAST: (2, 2),
        Gravity.SOUTH: (1, 2),
        Gravity.SOUTHWEST: (0, 2),
        Gravity.WEST: (0, 1),
        Gravity.NORTHWEST: (0, 0),
    }
)

# Slack for comparing fractions computed in floating point.
_EPSILON = 1e-6

Size = tuple[int, int]
# left, top, right, bottom as fractions of the picture's width and height.
Region = tuple[float, float, float, float]
WHOLE: Region = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Rendition:
    """One picture to render: `region` of the upright picture, resized to `size`."""

    region: Region
    size: Size

    @property
    def area(self) -> int:
        """The number of output pixels: what orders the cascade."""
        return self.size[0] * self.size[1]


def fit_inside(size: Size, box: Size) -> Size:
    """The size that fits `size` in `box` keeping its aspect; never larger than `size`."""
    width, height = size
    scale = min(box[0] / width, box[1] / height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def cover(size: Size, box: Size, gravity: Gravity = Gravity.CENTRE) -> Rendition:
    """The crop with the box's aspect at `gravity`, filling the box; at source resolution when the source is smaller."""
    width, height = size
    box_width, box_height = box
    scale = min(width / box_width, height / box_height, 1.0)
    output = max(1, round(box_width * scale)), max(1, round(box_height * scale))
    # The largest crop with the output's aspect, on whole source pixels (so that an unscaled crop stays sharp).
    if width * output[1] > height * output[0]:
        crop = min(width, max(1, round(height * output[0] / output[1]))), height
    else:
        crop = width, min(height, max(1, round(width * output[1] / output[0])))
    across, down = _ANCHORS[gravity]
    left, top = (width - crop[0]) * across // 2, (height - crop[1]) * down // 2
    region = (left / width, top / height, (left + crop[0]) / width, (top + crop[1]) / height)
    return Rendition(region, output)


def plan(size: Size, variant: Variant) -> Rendition:
    """What a variant is made of, for an upright picture of `size` (its full, undecoded size)."""
    if variant.fit is Fit.COVER:
        return cover(size, variant.box, variant.gravity)
    return Rendition(WHOLE, fit_inside(size, variant.box))


def required_size(renditions: Iterable[Rendition]) -> Size:
    """The smallest picture from which every rendition can be cut and resized without upscaling."""
    renditions = list(renditions)
    width = max(rendition.size[0] / (rendition.region[2] - rendition.region[0]) for rendition in renditions)
    height = max(rendition.size[1] / (rendition.region[3] - rendition.region[1]) for rendition in renditions)
    return math.ceil(width - _EPSILON), math.ceil(height - _EPSILON)


def covers(source: Rendition, target: Rendition) -> bool:
    """Whether `source` holds all of `target`'s region at no less than `target`'s resolution."""
    source_left, source_top, source_right, source_bottom = source.region
    left, top, right, bottom = target.region
    inside = (
        left >= source_left - _EPSILON
        and top >= source_top - _EPSILON
        and right <= source_right + _EPSILON
        and bottom <= source_bottom + _EPSILON
    )
    width = source.size[0] * (right - left) / (source_right - source_left)
    height = source.size[1] * (bottom - top) / (source_bottom - source_top)
    return inside and width >= target.size[0] - _EPSILON and height >= target.size[1] - _EPSILON


def render(source: Image.Image, source_region: Region, target: Rendition) -> Image.Image:
    """Cut `target.region` out of `source` (which shows `source_region`) and Lanczos-resize it to `target.size`.

    Returns `source` itself when nothing changes, and a plain crop when the region already has the target size. A
    region on whole pixels is made smaller by `downscale`; one between pixels (a cover crop cut from a JPEG draft or
    from a smaller rendition) is resized by Pillow, which takes a fractional box.
    """
    box = _pixel_box(source.size, source_region, target.region)
    left, top, right, bottom = (round(edge) for edge in box)
    pixels = (left, top, right, bottom)
    on_whole_pixels = all(abs(edge - pixel) < _EPSILON for edge, pixel in zip(box, pixels, strict=True))
    whole = pixels == (0, 0, *source.size)
    if on_whole_pixels and (right - left, bottom - top) == target.size:
        return source if whole else source.crop(pixels)
    if on_whole_pixels and target.size[0] <= right - left and target.size[1] <= bottom - top:
        return downscale(source if whole else source.crop(pixels), target.size)
    return source.resize(target.size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)


def _pixel_box(size: Size, source_region: Region, region: Region) -> Region:
    source_left, source_top, source_right, source_bottom = source_region
    scale_x = size[0] / (source_right - source_left)
    scale_y = size[1] / (source_bottom - source_top)
    left, top, right, bottom = region
    return (
        (left - source_left) * scale_x,
        (top - source_top) * scale_y,
        (right - source_left) * scale_x,
        (bottom - source_top) * scale_y,
    )


def displayed_size(size: Size, orientation: int) -> Size:
    """The size as displayed once the orientation is applied (and back: the transposition is its own inverse)."""
    width, height = size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def orient(image: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation value (1 or unknown: unchanged)."""
    transposition = _TRANSPOSITIONS.get(orientation)
    return image if transposition is None else image.transpose(transposition)
