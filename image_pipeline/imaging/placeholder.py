"""What an app paints before the image loads: a dominant colour and a BlurHash."""

from __future__ import annotations

import blurhash
from PIL import Image

from image_pipeline.imaging.results import Placeholder

# BlurHash's recommended component counts; the string stays about 28 characters.
BLURHASH_COMPONENTS = (4, 3)
SAMPLE_EDGE = 32
PALETTE_COLOURS = 8


def make_placeholder(image: Image.Image) -> Placeholder:
    """Compute the placeholder from any (preferably small) upright sRGB image."""
    sample = image.convert("RGB")
    sample.thumbnail((SAMPLE_EDGE, SAMPLE_EDGE), Image.Resampling.BOX)
    x_components, y_components = BLURHASH_COMPONENTS
    return Placeholder(
        dominant_color=dominant_colour(sample),
        blurhash=blurhash.encode(sample, x_components=x_components, y_components=y_components),
    )


def dominant_colour(image: Image.Image) -> str:
    """The most frequent colour after quantising to a small palette, as `#rrggbb`."""
    quantised = image.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or [0, 0, 0]
    _, index = max(quantised.getcolors() or [(1, 0)])
    red, green, blue = palette[index * 3 : index * 3 + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"
