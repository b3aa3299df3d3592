"""Bring any decoded mode and embedded profile to 8-bit sRGB, keeping alpha wherever the source has any."""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageCms

# Modes resize works on directly; anything else is normalised before resizing.
RESIZABLE_MODES = frozenset({"L", "RGB", "RGBA", "CMYK"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_resizable(image: Image.Image) -> Image.Image:
    """Convert exotic modes (palette, bilevel, 16-bit, float, LA) to L, RGB, RGBA or CMYK, scaling deep values."""
    mode = image.mode
    if mode in RESIZABLE_MODES:
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if _has_transparency(image) else "RGB")
    if mode in ("LA", "La", "RGBa", "RGBX"):
        return image.convert("RGBA" if "A" in mode or "a" in mode else "RGB")
    if mode in _SIXTEEN_BIT_MODES:
        return image.convert("I").point(lambda value: value * (255 / 65535)).convert("L")
    if mode == "F":
        _, high = image.getextrema()
        scale = 255.0 if isinstance(high, float) and high <= 1.0 else 255 / 65535
        return image.point(lambda value: value * scale).convert("L")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGBA" if _has_transparency(image) else "RGB")


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert to sRGB through the embedded profile; a broken profile falls back to a plain conversion.

    The result is RGB or RGBA, or L for a grey image without a profile to apply: its values are sRGB greys already,
    and resizing one channel costs a third of three (the encoders expand it).
    """
    target_mode = "RGBA" if image.mode in ("RGBA", "LA") else "RGB"
    if icc_profile and not _is_srgb(icc_profile):
        converted = _through_profile(image, icc_profile, target_mode)
        if converted is not None:
            return converted
    if image.mode in (target_mode, "L"):
        return image
    return image.convert(target_mode)


def flattened(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """An RGB copy of an L, RGB or RGBA image, its transparent areas composited onto `background`."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    canvas = Image.new("RGB", image.size, background)
    canvas.paste(image, mask=image.getchannel("A"))
    return canvas


def _through_profile(image: Image.Image, icc_profile: bytes, target_mode: str) -> Image.Image | None:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        return ImageCms.profileToProfile(
            image, source, _srgb_profile(), outputMode=target_mode, renderingIntent=ImageCms.Intent.PERCEPTUAL
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _is_srgb(icc_profile: bytes) -> bool:
    # Transforming sRGB to sRGB is a costly no-op; the description is the cheap, reliable tell.
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc_profile)))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False
    return "srgb" in description.lower().replace(" ", "")


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("PA", "LA", "RGBA") or "transparency" in image.info
