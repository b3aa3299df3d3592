"""Provisional pipeline: decode, orient, resize, encode. Being replaced by the tuned core."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.imaging.results import EncodedVariant, Placeholder, ProcessedImage, SourceFacts
from image_pipeline.settings import ImagingOptions


def process_image(data: bytes, options: ImagingOptions) -> ProcessedImage:
    """Turn untrusted image bytes into the configured variants, or raise ImageRejected."""
    if not data:
        raise ImageRejected(RejectionCode.EMPTY, "the upload is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=["JPEG", "PNG", "WEBP", "GIF"])
        image.load()
    except Exception as error:
        raise ImageRejected(RejectionCode.CORRUPT_IMAGE, f"cannot decode: {error}") from None
    fmt = image.format
    image = ImageOps.exif_transpose(image).convert("RGB")
    variants = []
    for variant in options.variants:
        copy = image.copy()
        copy.thumbnail((variant.max_edge, variant.max_edge))
        out = io.BytesIO()
        copy.save(out, "WEBP", quality=options.quality)
        variants.append(EncodedVariant(variant.name, copy.width, copy.height, "webp", "image/webp", "webp", out.getvalue()))
    return ProcessedImage(
        SourceFacts(fmt, image.width, image.height, len(data), 1),
        tuple(variants),
        Placeholder("#000000", "L00000fQfQfQfQfQfQfQfQfQfQfQ"),
    )
