"""What an app paints before the image loads: a dominant colour, a BlurHash and a ThumbHash."""

from __future__ import annotations

import base64
from typing import cast

import blurhash
import thumbhash
from PIL import Image

from image_pipeline.imaging.colour import flattened
from image_pipeline.results import Placeholder

# BlurHash's recommended component counts; the string stays about 28 characters.
BLURHASH_COMPONENTS = (4, 3)
SAMPLE_EDGE = 32
PALETTE_COLOURS = 8
# ThumbHash encodes images of at most 100 x 100 pixels.
THUMBHASH_EDGE = 100
# What the dominant colour of a cut-out counts as opaque (as the cutout's coverage does).
OPAQUE_ALPHA = 128


def make_placeholder(image: Image.Image, background: tuple[int, int, int], opaque_only: bool = False) -> Placeholder:
    """Compute the placeholder from an upright sRGB L, RGB or RGBA image (preferably small).

    BlurHash has no alpha: it describes the image composited onto `background`. The ThumbHash keeps the alpha. The
    dominant colour is taken from the colour channels alone, as it always was, or with `opaque_only` (a cut-out)
    from the pixels at least half opaque: the subject's colour, not the hidden background's.
    """
    x_components, y_components = BLURHASH_COMPONENTS
    colours = _opaque_pixels(_sample(image.convert("RGBA"))) if opaque_only else _sample(image.convert("RGB"))
    return Placeholder(
        dominant_color=dominant_colour(colours),
        blurhash=blurhash.encode(_sample(flattened(image, background)), x_components, y_components),
        thumbhash=thumbhash_of(image),
    )


def _sample(image: Image.Image) -> Image.Image:
    """`image`, a copy the caller made, shrunk in place to at most SAMPLE_EDGE pixels a side."""
    image.thumbnail((SAMPLE_EDGE, SAMPLE_EDGE), Image.Resampling.BOX)
    return image


def _opaque_pixels(sample: Image.Image) -> Image.Image:
    """The RGB pixels of an RGBA sample that are at least half opaque, in one row (all of them if none is)."""
    rgba = sample.tobytes()
    opaque = [rgba[start : start + 3] for start in range(0, len(rgba), 4) if rgba[start + 3] >= OPAQUE_ALPHA]
    if not opaque:
        return sample.convert("RGB")
    return Image.frombytes("RGB", (len(opaque), 1), b"".join(opaque))


def thumbhash_of(image: Image.Image) -> str:
    """The ThumbHash of an L, RGB or RGBA image, as standard base64 with padding."""
    sample = image.convert("RGBA")
    sample.thumbnail((THUMBHASH_EDGE, THUMBHASH_EDGE), Image.Resampling.BOX)
    hashed = thumbhash.rgba_to_thumb_hash(sample.width, sample.height, sample.tobytes())
    return base64.b64encode(hashed).decode("ascii")


def dominant_colour(image: Image.Image) -> str:
    """The most frequent colour after quantising to a small palette, as `#rrggbb`."""
    quantised = image.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or [0, 0, 0]
    _, index = max(quantised.getcolors() or [(1, 0)])
    start = cast("int", index) * 3  # a palette image's colours are palette indices
    red, green, blue = palette[start : start + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"
