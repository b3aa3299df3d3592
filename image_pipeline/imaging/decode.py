"""Open untrusted bytes with the allowed decoders only, enforce the limits, then decode as little as needed."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError

from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.settings import ImagingOptions

pillow_heif.register_heif_opener()

# Pillow only warns between MAX_IMAGE_PIXELS and twice that; a bomb must never pass with a warning.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

# Phone JPEGs with a depth or preview image come back as MPO: Pillow's JPEG opener makes those itself.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF", "HEIF")
ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG"})
ORIENTATION_TAG = 0x0112

# Peak memory per decoded pixel, measured with whole-process peak RSS on 25-100 MP inputs through this core:
# libwebp decodes to an RGBA canvas that Pillow copies, GIF frames are expanded to RGB(A), the HEIF/AVIF
# decoders keep YUV planes beside the RGB result. Other formats cost their mode's bytes about 2.6 times.
_PEAK_BYTES_PER_PIXEL = {"WEBP": 18.5, "AVIF": 10.0, "HEIF": 8.0, "GIF": 8.0}
_MODE_BYTES = {"1": 1, "L": 1, "RGB": 3}
_FULL_DECODE_OVERHEAD = 2.6
# A JPEG is decoded at its draft scale; decode, colour conversion and the first resize together.
_JPEG_BYTES_PER_DRAFT_PIXEL = 12.0

_ISO_BMFF_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")

# Everything a decoder can raise on hostile bytes; none of these may leave the core.
DECODER_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    SyntaxError,
    struct.error,
    zlib.error,
    EOFError,
    IndexError,
    KeyError,
    AttributeError,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,
    NotImplementedError,
    Image.DecompressionBombWarning,
    Image.DecompressionBombError,
)


@dataclass
class OpenedImage:
    """An image whose header is read and checked against the limits, not yet decoded."""

    image: Image.Image
    format: str
    frames: int


def looks_like_allowed_format(data: bytes) -> bool:
    """Whether the magic bytes claim one of the allowed formats (to tell corrupt from unsupported)."""
    head = data[:32]
    return (
        head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or (head[4:8] == b"ftyp" and head[8:12] in _ISO_BMFF_BRANDS)
    )


def open_checked(data: bytes, options: ImagingOptions) -> OpenedImage:
    """Identify the format from the bytes and check size, pixel and frame limits before any pixel is decoded."""
    if not data:
        raise ImageRejected(RejectionCode.EMPTY, "the upload is empty (0 bytes)")
    if len(data) > options.max_input_bytes:
        raise ImageRejected(
            RejectionCode.TOO_LARGE, f"the upload is {len(data)} bytes; the limit is {options.max_input_bytes}"
        )
    _arm_bomb_guard(options.max_pixels)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _too_many_pixels(options.max_pixels) from None
    except UnidentifiedImageError:
        raise _unidentified(data) from None
    except DECODER_ERRORS as error:
        raise corrupt(error) from None
    check_pixels(image.size, options.max_pixels)
    frames = count_frames(image)
    if frames > options.max_frames:
        raise ImageRejected(
            RejectionCode.TOO_LARGE, f"the image has {frames} frames; the limit is {options.max_frames}"
        )
    if image.format == "TIFF" and frames > 1:
        _check_every_page(image, frames, options.max_pixels)
    _check_decode_memory(image, options)
    return OpenedImage(image, "JPEG" if image.format == "MPO" else image.format, frames)


def estimated_decode_mib(image: Image.Image, largest_edge: int) -> float:
    """The peak memory, in MiB, that decoding and the first downscale of this image will need."""
    width, height = image.size
    if image.format in ("JPEG", "MPO"):
        scale = jpeg_draft_scale(image.size, largest_edge)
        return (width // scale) * (height // scale) * _JPEG_BYTES_PER_DRAFT_PIXEL / 2**20
    per_pixel = _PEAK_BYTES_PER_PIXEL.get(
        image.format, _MODE_BYTES.get(image.mode, 4) * _FULL_DECODE_OVERHEAD
    )
    return width * height * per_pixel / 2**20


def jpeg_draft_scale(size: tuple[int, int], largest_edge: int) -> int:
    """The DCT scale (1, 2, 4 or 8) at which a JPEG of `size` still covers a `largest_edge` box."""
    ratio = max(size) / largest_edge
    return max((scale for scale in (1, 2, 4, 8) if scale <= ratio), default=1)


def _check_decode_memory(image: Image.Image, options: ImagingOptions) -> None:
    needed = estimated_decode_mib(image, options.largest_variant.max_edge)
    if needed > options.max_decode_mib:
        width, height = image.size
        raise ImageRejected(
            RejectionCode.TOO_LARGE,
            f"decoding this {width}x{height} {image.format} would need about {needed:.0f} MiB; "
            f"the limit is {options.max_decode_mib} MiB",
        )


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse a canvas, frame or page larger than the pixel limit (or with no pixels at all)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(RejectionCode.CORRUPT_IMAGE, f"the image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(
            RejectionCode.TOO_LARGE,
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )


def _check_every_page(image: Image.Image, pages: int, max_pixels: int) -> None:
    """A TIFF's pages have sizes of their own, read from each page's header (no pixels are decoded)."""
    try:
        for page in range(pages):
            image.seek(page)
            check_pixels(image.size, max_pixels)
        image.seek(0)
    except DECODER_ERRORS as error:
        raise corrupt(error) from None


def count_frames(image: Image.Image) -> int:
    """The number of frames or pages, read from headers only."""
    try:
        return int(getattr(image, "n_frames", 1))
    except DECODER_ERRORS as error:
        raise corrupt(error) from None


def load_first_frame(opened: OpenedImage, draft_size: tuple[int, int] | None) -> Image.Image:
    """Decode the first frame; a JPEG is decoded straight at a reduced scale that still covers `draft_size`."""
    image = opened.image
    try:
        if draft_size is not None and image.format in ("JPEG", "MPO"):
            image.draft(image.mode if image.mode in ("RGB", "L", "CMYK") else None, draft_size)
        image.load()
    except DECODER_ERRORS as error:
        raise corrupt(error) from None
    return image


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation still to apply after decoding: 1 when absent, invalid or already applied by the loader."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except DECODER_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def corrupt(error: BaseException) -> ImageRejected:
    """The rejection for bytes of an allowed format that do not decode."""
    if isinstance(error, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
        return ImageRejected(RejectionCode.TOO_LARGE, f"decompression bomb refused: {error}")
    detail = str(error) or type(error).__name__
    return ImageRejected(RejectionCode.CORRUPT_IMAGE, f"the image cannot be decoded: {detail}")


def _unidentified(data: bytes) -> ImageRejected:
    if looks_like_allowed_format(data):
        return ImageRejected(RejectionCode.CORRUPT_IMAGE, "the image header is damaged and cannot be read")
    return ImageRejected(
        RejectionCode.UNSUPPORTED_FORMAT,
        "not an image in an accepted format (JPEG, PNG, WebP, GIF, TIFF, BMP, AVIF, HEIC/HEIF)",
    )


def _too_many_pixels(max_pixels: int) -> ImageRejected:
    return ImageRejected(RejectionCode.TOO_LARGE, f"the image has more than {max_pixels} pixels")


def _arm_bomb_guard(max_pixels: int) -> None:
    # Pillow's guard is process-wide; align it with our limit so that its warning (an error, above) fires at ours.
    Image.MAX_IMAGE_PIXELS = max_pixels
