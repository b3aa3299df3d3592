"""Open untrusted bytes with the allowed decoders only, enforce the limits, then decode as little as needed."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError

from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.options import PIXEL_CEILING, ImagingOptions

pillow_heif.register_heif_opener()

# Our own header checks enforce each call's pixel limit before anything is decoded (canvas, every TIFF page, every
# GIF frame's extent). Pillow's process-wide guard stays, once and fixed, as a backstop far above them: it raises
# past twice this, and warns past it (the warning hook then refuses the image). A configured limit above it is
# capped to it.
Image.MAX_IMAGE_PIXELS = PIXEL_CEILING

# Phone JPEGs with a depth or preview image come back as MPO: Pillow's JPEG opener makes those itself.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF", "HEIF")
ANIMATED_FORMATS = frozenset({"GIF", "WEBP", "PNG"})
ORIENTATION_TAG = 0x0112

# Peak memory per decoded pixel, measured with whole-process peak RSS on 25-100 MP inputs through this core:
# libwebp decodes to an RGBA canvas that Pillow copies, GIF frames are expanded to RGB(A), the HEIF/AVIF
# decoders keep YUV planes beside the RGB result. Other formats cost their mode's bytes about 3.3 times, the copy
# of the picture handed to libvips for the first downscale included (10.0 bytes per RGB pixel for PNG, TIFF, BMP).
_PEAK_BYTES_PER_PIXEL = {"WEBP": 18.5, "AVIF": 10.0, "HEIF": 8.0, "GIF": 8.0}
_MODE_BYTES = {"1": 1, "L": 1, "RGB": 3}
_FULL_DECODE_OVERHEAD = 3.4
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
    max_pixels = pixel_limit(options)
    if data.startswith((b"GIF87a", b"GIF89a")):
        # Pillow grows a GIF's canvas to each frame's extent, and fills a frame's extent, while it seeks to it.
        _check_size(gif_canvas(data), max_pixels)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise _unidentified(data) from None
    except DECODER_ERRORS as error:
        raise corrupt(error) from None
    check_pixels(image.size, max_pixels)
    frames = count_frames(image)
    if frames > options.max_frames:
        raise ImageRejected(
            RejectionCode.TOO_LARGE, f"the image has {frames} frames; the limit is {options.max_frames}"
        )
    if image.format == "TIFF" and frames > 1:
        _check_every_page(image, frames, max_pixels)
    return OpenedImage(image, "JPEG" if image.format == "MPO" else str(image.format), frames)


def pixel_limit(options: ImagingOptions) -> int:
    """The pixel limit in force: the configured one, capped at Pillow's backstop."""
    return min(options.max_pixels, PIXEL_CEILING)


# A GIF is its signature and logical screen descriptor, then blocks, each opened by one of three bytes.
_GIF_HEADER_BYTES = 13
_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = 0x21, 0x2C, 0x3B
# Pillow's LZW decoder refuses a larger minimum code size ("codec configuration error").
_GIF_MAX_LZW_CODE_SIZE = 12


def gif_canvas(data: bytes) -> tuple[int, int]:
    """The largest canvas a GIF can grow to: its logical screen and every frame's extent, walking its blocks.

    Pillow skips unknown bytes between blocks and reads a frame at any ',' it meets; this walk does not, so that text
    behind a GIF signature is a corrupt file rather than a bomb of the sizes its letters spell: a byte where no block
    can start, or an LZW code size the decoder refuses, makes the file corrupt. Where the data is cut short, the frames
    read so far count and the truncation is left to the decoder. Without any frame the answer is (0, 0): Pillow
    refuses such a file, so its logical screen is never allocated.
    """
    if len(data) < _GIF_HEADER_BYTES:
        return 0, 0
    width, height = struct.unpack_from("<HH", data, 6)
    frames = 0
    for right, bottom in _gif_frame_edges(data, _GIF_HEADER_BYTES + _colour_table_bytes(data[10])):
        width, height = max(width, right), max(height, bottom)
        frames += 1
    return (width, height) if frames else (0, 0)


def _gif_frame_edges(data: bytes, position: int) -> Iterator[tuple[int, int]]:
    """The right and bottom edge of every frame, from the blocks at `position` on up to the trailer.

    Every step moves forward, so the walk is linear in the data; it ends quietly where the data is cut short.
    """
    try:
        while (introducer := data[position]) != _GIF_TRAILER:
            if introducer == _GIF_EXTENSION:
                position = _skip_sub_blocks(data, position + 2)  # past the introducer and the label
            elif introducer == _GIF_IMAGE:
                left, top, width, height, flags = struct.unpack_from("<HHHHB", data, position + 1)
                yield left + width, top + height
                position += 10 + _colour_table_bytes(flags)
                if data[position] > _GIF_MAX_LZW_CODE_SIZE:
                    raise ImageRejected(
                        RejectionCode.CORRUPT_IMAGE,
                        f"the GIF's LZW code size at offset {position} is {data[position]}; "
                        f"the most is {_GIF_MAX_LZW_CODE_SIZE}",
                    )
                position = _skip_sub_blocks(data, position + 1)
            else:
                raise ImageRejected(
                    RejectionCode.CORRUPT_IMAGE,
                    f"the GIF has byte 0x{introducer:02x} at offset {position}, where a block must start",
                )
    except (IndexError, struct.error):
        return


def _colour_table_bytes(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _skip_sub_blocks(data: bytes, position: int) -> int:
    """The position after the data sub-blocks at `position` and their zero-size terminator."""
    while (size := data[position]) != 0:
        position += 1 + size
    return position + 1


def check_decode_memory(opened: OpenedImage, draft_size: tuple[int, int] | None, max_decode_mib: int) -> None:
    """Refuse an image whose decode would need more memory than `max_decode_mib` (JPEGs at their draft scale)."""
    image = opened.image
    needed = estimated_decode_mib(image, draft_size)
    if needed > max_decode_mib:
        width, height = image.size
        raise ImageRejected(
            RejectionCode.TOO_LARGE,
            f"decoding this {width}x{height} {image.format} would need about {needed:.0f} MiB; "
            f"the limit is {max_decode_mib} MiB",
        )


def estimated_decode_mib(image: Image.Image, draft_size: tuple[int, int] | None) -> float:
    """The peak memory, in MiB, that decoding and the first downscale of this image will need."""
    width, height = image.size
    if image.format in ("JPEG", "MPO"):
        scale = jpeg_draft_scale(image.size, draft_size)
        return (width // scale) * (height // scale) * _JPEG_BYTES_PER_DRAFT_PIXEL / 2**20
    per_pixel = _PEAK_BYTES_PER_PIXEL.get(str(image.format), _MODE_BYTES.get(image.mode, 4) * _FULL_DECODE_OVERHEAD)
    return width * height * per_pixel / 2**20


def jpeg_draft_scale(size: tuple[int, int], draft_size: tuple[int, int] | None) -> int:
    """The DCT scale (1, 2, 4 or 8) Pillow decodes a JPEG of `size` at when asked for at least `draft_size`."""
    if draft_size is None:
        return 1
    ratio = min(size[0] // draft_size[0], size[1] // draft_size[1])
    return max(scale for scale in (1, 2, 4, 8) if scale <= max(ratio, 1))


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    """Refuse a canvas, frame or page larger than the pixel limit (or with no pixels at all)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(RejectionCode.CORRUPT_IMAGE, f"the image declares an empty size {width}x{height}")
    _check_size(size, max_pixels)


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
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
    if isinstance(error, Image.DecompressionBombError):
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
