"""Encode pixels once per output, writing nothing from the upload but the pixels."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from image_pipeline.imaging.colour import flattened
from image_pipeline.options import Encoding, OutputFormat

# libwebp's default effort, the same sharp uses, so sizes and quality compare like for like.
WEBP_METHOD = 4
# sharp's AVIF defaults at equal quality (the same quality number, 4:4:4, aom speed 5 = sharp's effort 4) for 0.35x
# its CPU: rectangular partitions are the costly search that changes bytes and PSNR least (docs/performance-avif.md).
# One thread each: the core already runs encodes in parallel.
AVIF_OPTIONS = {
    "speed": 5,
    "subsampling": "4:4:4",
    "codec": "aom",
    "max_threads": 1,
    "advanced": (("enable-rect-partitions", "0"),),
}


def encode(image: Image.Image, encoding: Encoding, background: tuple[int, int, int]) -> bytes:
    """Encode one still L, RGB or RGBA image as colour; no EXIF, XMP, ICC or comment is written.

    JPEG is flattened onto `background` first.
    """
    buffer = io.BytesIO()
    image = _clean(image)
    if image.mode == "L":
        image = image.convert("RGB")
    output_format, quality = encoding.format, encoding.quality
    if output_format is OutputFormat.WEBP:
        image.save(buffer, "WEBP", quality=quality, method=WEBP_METHOD)
    elif output_format is OutputFormat.AVIF:
        image.save(buffer, "AVIF", quality=quality, **AVIF_OPTIONS)
    elif output_format is OutputFormat.JPEG:
        opaque = image if image.mode == "RGB" else flattened(image, background)
        opaque.save(buffer, "JPEG", quality=quality, progressive=True, optimize=True)
    else:
        image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def encode_animation(frames: Sequence[Image.Image], durations: Sequence[int], loop: int, encoding: Encoding) -> bytes:
    """Encode an animation in a format that supports one (WebP, APNG or AVIF)."""
    buffer = io.BytesIO()
    first, *rest = [_clean(frame) for frame in frames]
    options = {"save_all": True, "append_images": rest, "duration": list(durations), "loop": loop}
    output_format, quality = encoding.format, encoding.quality
    if output_format is OutputFormat.WEBP:
        first.save(buffer, "WEBP", quality=quality, method=WEBP_METHOD, **options)
    elif output_format is OutputFormat.AVIF:
        first.save(buffer, "AVIF", quality=quality, **AVIF_OPTIONS, **options)
    else:
        first.save(buffer, "PNG", compress_level=6, **options)
    return buffer.getvalue()


def _clean(image: Image.Image) -> Image.Image:
    # Resized images inherit `info` (EXIF, XMP, ICC, comments); encoders would write it back out.
    if image.info:
        image = image.copy()
        image.info = {}
    return image
