"""The use of the core: bytes in, checked, decoded once, oriented, resized in a cascade, encoded in parallel."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.imaging.colour import to_resizable, to_srgb
from image_pipeline.imaging.decode import (
    ANIMATED_FORMATS,
    DECODER_ERRORS,
    OpenedImage,
    check_pixels,
    corrupt,
    load_first_frame,
    open_checked,
    orientation_of,
)
from image_pipeline.imaging.encode import encode, encode_animation
from image_pipeline.imaging.geometry import displayed_size, downscale, fit_inside, orient
from image_pipeline.imaging.placeholder import make_placeholder
from image_pipeline.imaging.results import EncodedVariant, ProcessedImage, SourceFacts
from image_pipeline.settings import ImagingOptions

# A JPEG is decoded at the smallest DCT scale that still gives at least this fraction of the largest variant's
# size. Below 1, a 4032 px photo is decoded at 1/2 (2016 px) and Lanczos makes up the last 1.6 % for a 2048 px
# variant: a quarter of the decode and resize work, for 0.14 dB less PSNR on that box (see the README's figures).
DRAFT_MARGIN = 0.95

# Animated output keeps every frame of every variant in memory; beyond this many source pixels
# (frames x canvas) the animation is flattened to its first frame instead.
ANIMATION_PIXEL_BUDGET = 25_000_000


def process_image(data: bytes, options: ImagingOptions) -> ProcessedImage:
    """Turn untrusted image bytes into the configured variants, or raise ImageRejected."""
    opened = open_checked(data, options)
    try:
        if _keeps_animation(opened, options):
            return _process_animation(data, opened, options)
        return _process_still(data, opened, options)
    except ImageRejected:
        raise
    except MemoryError:
        raise ImageRejected(RejectionCode.TOO_LARGE, "decoding the image needs more memory than is available") from None
    except DECODER_ERRORS as error:
        raise corrupt(error) from None
    finally:
        opened.image.close()


def _keeps_animation(opened: OpenedImage, options: ImagingOptions) -> bool:
    return (
        options.keep_animation
        and opened.frames > 1
        and opened.format in ANIMATED_FORMATS
        and options.output_format.supports_animation
        and opened.frames * opened.image.width * opened.image.height <= ANIMATION_PIXEL_BUDGET
    )


def _process_still(data: bytes, opened: OpenedImage, options: ImagingOptions) -> ProcessedImage:
    stored_size = opened.image.size
    sizes = {variant.name: fit_inside(stored_size, variant.max_edge) for variant in options.variants}
    largest = sizes[options.largest_variant.name]
    image = load_first_frame(opened, (round(largest[0] * DRAFT_MARGIN), round(largest[1] * DRAFT_MARGIN)))
    check_pixels(image.size, options.max_pixels)
    orientation = orientation_of(image)
    icc_profile = image.info.get("icc_profile")
    image = to_resizable(image)
    image.info = {}

    def render(previous: Image.Image | None, size: tuple[int, int]) -> Image.Image:
        if previous is None:
            return to_srgb(downscale(image, size), icc_profile)
        return downscale(previous, size)

    with ThreadPoolExecutor(max_workers=_encode_threads(options)) as pool:
        encoded = _cascade(sizes, render, lambda picture: pool.submit(_encode_upright, picture, orientation, options))
        smallest_upright, _ = list(encoded.values())[-1].result()
        placeholder = make_placeholder(smallest_upright)
        variants = tuple(_variant(variant.name, encoded[sizes[variant.name]].result(), options) for variant in options.variants)
    width, height = displayed_size(stored_size, orientation)
    return ProcessedImage(SourceFacts(opened.format, width, height, len(data), opened.frames), variants, placeholder)


def _cascade(
    sizes: dict[str, tuple[int, int]],
    render: Callable[[Image.Image | None, tuple[int, int]], Image.Image],
    submit: Callable[[Image.Image], Future],
) -> dict[tuple[int, int], Future]:
    """Render each distinct size from the next larger one, largest first, handing each to `submit` at once.

    The futures come back in that order, so the last one is the smallest.
    """
    encoded: dict[tuple[int, int], Future] = {}
    picture: Image.Image | None = None
    for size in sorted(set(sizes.values()), key=lambda size: size[0] * size[1], reverse=True):
        picture = render(picture, size)
        encoded[size] = submit(picture)
    return encoded


def _encode_upright(picture: Image.Image, orientation: int, options: ImagingOptions) -> tuple[Image.Image, bytes]:
    upright = orient(picture, orientation)
    return upright, encode(upright, options.output_format, options.quality)


def _variant(name: str, rendered: tuple[Image.Image, bytes], options: ImagingOptions) -> EncodedVariant:
    upright, data = rendered
    output_format = options.output_format
    return EncodedVariant(
        name=name,
        width=upright.width,
        height=upright.height,
        format=output_format.value,
        content_type=output_format.content_type,
        extension=output_format.extension,
        data=data,
    )


def _process_animation(data: bytes, opened: OpenedImage, options: ImagingOptions) -> ProcessedImage:
    frames, durations = _decode_frames(opened, options)
    loop = int(opened.image.info.get("loop", 0))
    orientation = orientation_of(opened.image)
    upright = [orient(frame, orientation) for frame in frames]
    canvas = upright[0].size
    variants = []
    for variant in options.variants:
        size = fit_inside(canvas, variant.max_edge)
        resized = [downscale(frame, size) for frame in upright]
        payload = encode_animation(resized, durations, loop, options.output_format, options.quality)
        variants.append(_variant(variant.name, (resized[0], payload), options))
    source = SourceFacts(opened.format, canvas[0], canvas[1], len(data), opened.frames)
    return ProcessedImage(source, tuple(variants), make_placeholder(upright[0]))


def _decode_frames(opened: OpenedImage, options: ImagingOptions) -> tuple[list[Image.Image], list[int]]:
    """Every frame as sRGB RGBA with its duration, each checked against the pixel limit."""
    image = opened.image
    frames, durations = [], []
    icc_profile = image.info.get("icc_profile")
    for index in range(opened.frames):
        image.seek(index)
        check_pixels(image.size, options.max_pixels)
        frame = to_srgb(to_resizable(image.convert("RGBA")), icc_profile)
        frame.info = {}
        frames.append(frame)
        durations.append(int(image.info.get("duration", 100)))
    return frames, durations


def _encode_threads(options: ImagingOptions) -> int:
    return options.encode_threads or min(len(options.variants), os.cpu_count() or 1)
