"""Encode pixels once per output, writing nothing from the upload but the pixels."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from image_pipeline.settings import OutputFormat

# libwebp's default effort, the same sharp uses, so sizes and quality compare like for like.
WEBP_METHOD = 4
AVIF_SPEED = 8
JPEG_BACKGROUND = (255, 255, 255)


def encode(image: Image.Image, output_format: OutputFormat, quality: int) -> bytes:
    """Encode one still image; no EXIF, XMP, ICC or comment is written."""
    buffer = io.BytesIO()
    image = _clean(image)
    if output_format is OutputFormat.WEBP:
        image.save(buffer, "WEBP", quality=quality, method=WEBP_METHOD)
    elif output_format is OutputFormat.AVIF:
        image.save(buffer, "AVIF", quality=quality, speed=AVIF_SPEED)
    elif output_format is OutputFormat.JPEG:
        _flatten(image).save(buffer, "JPEG", quality=quality, progressive=True, optimize=True)
    else:
        image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def encode_animation(
    frames: Sequence[Image.Image], durations: Sequence[int], loop: int, output_format: OutputFormat, quality: int
) -> bytes:
    """Encode an animation in a format that supports one (WebP, APNG or AVIF)."""
    buffer = io.BytesIO()
    first, *rest = [_clean(frame) for frame in frames]
    options = {"save_all": True, "append_images": rest, "duration": list(durations), "loop": loop}
    if output_format is OutputFormat.WEBP:
        first.save(buffer, "WEBP", quality=quality, method=WEBP_METHOD, **options)
    elif output_format is OutputFormat.AVIF:
        first.save(buffer, "AVIF", quality=quality, speed=AVIF_SPEED, **options)
    else:
        first.save(buffer, "PNG", compress_level=6, **options)
    return buffer.getvalue()


def _clean(image: Image.Image) -> Image.Image:
    # Resized images inherit `info` (EXIF, XMP, ICC, comments); encoders would write it back out.
    if image.info:
        image = image.copy()
        image.info = {}
    return image


def _flatten(image: Image.Image) -> Image.Image:
    # JPEG has no alpha: transparent areas become white rather than black.
    if image.mode != "RGBA":
        return image
    background = Image.new("RGB", image.size, JPEG_BACKGROUND)
    background.paste(image, mask=image.getchannel("A"))
    return background
