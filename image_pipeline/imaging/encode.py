"""Encode pixels once per output, writing nothing from the upload but the pixels."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pyvips
from PIL import Image

from image_pipeline.imaging.colour import flattened
from image_pipeline.imaging.libvips import from_pillow
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
# GIF and TIFF are written by libvips' own savers with sharp's default settings: from the same pixels, byte for byte
# what sharp 0.35 writes for the Resize Images extension (checked against it, stills and animations). GIF: libvips'
# quantiser makes a palette from the first frame, and one of its own for a frame that would drift too far from it;
# Floyd-Steinberg dithered; one transparent index, where alpha is under half. (sharp's `reuse` would dither a GIF
# upload's frames to the palette libvips loaded with it; pixels from Pillow come without one.)
GIF_OPTIONS = {"bitdepth": 8, "effort": 7, "dither": 1.0, "interframe_maxerror": 0.0, "interpalette_maxerror": 3.0}
# TIFF: JPEG-compressed at the encoding's quality, as YCbCr 4:2:0 below quality 90 and RGB from there (Pillow's
# libtiff writer only has RGB, about three times the bytes at quality 80), in strips of 256 rows (sharp's tile height).
TIFF_OPTIONS = {"compression": "jpeg", "tile_height": 256}


def encode(image: Image.Image, encoding: Encoding, background: tuple[int, int, int]) -> bytes:
    """Encode one still L, RGB or RGBA image as colour; no EXIF, XMP, ICC or comment is written.

    JPEG and TIFF are flattened onto `background` first.
    """
    image = _clean(image)
    if image.mode == "L":
        image = image.convert("RGB")
    output_format, quality = encoding.format, encoding.quality
    if output_format is OutputFormat.GIF:
        still = _srgb(from_pillow(image))
        # Played once: no loop block, as sharp writes a still.
        still.set_type(pyvips.GValue.gint_type, "loop", 1)
        return still.gifsave_buffer(**GIF_OPTIONS)
    if output_format is OutputFormat.TIFF:
        # sharp drops the alpha band of a JPEG-compressed TIFF, which shows whatever colour transparent pixels hide;
        # flattened onto the background instead, as for JPEG.
        opaque = image if image.mode == "RGB" else flattened(image, background)
        return _srgb(from_pillow(opaque)).tiffsave_buffer(Q=quality, **TIFF_OPTIONS)
    buffer = io.BytesIO()
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


def encode_animation(frames: Sequence[Image.Image], durations: Sequence[int], plays: int, encoding: Encoding) -> bytes:
    """Encode RGB or RGBA frames of one size as an animation in a format that has them (WebP, APNG, AVIF or GIF).

    `durations` are in milliseconds; `plays` is how many times the animation plays, 0 for ever.
    """
    if encoding.format is OutputFormat.GIF:
        return _animation(frames, durations, plays).gifsave_buffer(**GIF_OPTIONS)
    buffer = io.BytesIO()
    first, *rest = [_clean(frame) for frame in frames]
    # WebP's loop count and APNG's num_plays both count plays, as `plays` does (Pillow passes them on as given).
    options = {"save_all": True, "append_images": rest, "duration": list(durations), "loop": plays}
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


def _srgb(pixels: pyvips.Image) -> pyvips.Image:
    # Bare bands are "multiband" to libvips; the savers are told they are sRGB colour, which they are.
    return pixels.copy(interpretation="srgb")


def _animation(frames: Sequence[Image.Image], durations: Sequence[int], plays: int) -> pyvips.Image:
    """The frames as libvips holds an animation: one tall image of pages stacked top to bottom, with their delays.

    libvips' `loop` counts plays (0: for ever), as `plays` does; its GIF saver writes the repeats after the first.
    """
    sheet = _srgb(pyvips.Image.arrayjoin([from_pillow(frame) for frame in frames], across=1))
    sheet.set_type(pyvips.GValue.gint_type, "page-height", frames[0].height)
    sheet.set_type(pyvips.GValue.array_int_type, "delay", list(durations))
    sheet.set_type(pyvips.GValue.gint_type, "loop", plays)
    return sheet
