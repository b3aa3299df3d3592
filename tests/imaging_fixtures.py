"""Generators for every imaging test fixture, built in memory with Pillow, numpy, zlib and struct (no binary blobs).

Import helpers explicitly from test modules: `from tests.imaging_fixtures import ...`.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image, ImageCms

# ---------------------------------------------------------------------------
# Basic images and encoding
# ---------------------------------------------------------------------------

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)
CYAN = (0, 255, 255)
MAGENTA = (255, 0, 255)
WHITE = (255, 255, 255)


def solid(color, size=(32, 24), mode="RGB") -> Image.Image:
    """A single-colour image."""
    return Image.new(mode, size, color)


def noise(size=(64, 64), seed=0, mode="RGB") -> Image.Image:
    """A deterministic random-noise image (incompressible, so truncation lands in pixel data)."""
    rng = np.random.default_rng(seed)
    channels = len(mode)
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(array[:, :, 0] if channels == 1 else array, mode)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    """Encode an image with Pillow (HEIF via pillow-heif without registering its opener globally)."""
    buffer = io.BytesIO()
    if fmt.upper() in ("HEIF", "HEIC"):
        import pillow_heif

        heif = pillow_heif.from_pillow(image)
        heif.save(buffer, format="HEIF", **params)
    else:
        image.save(buffer, fmt, **params)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """Open and fully load output bytes with Pillow."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb_at(image: Image.Image, xy) -> tuple[int, int, int]:
    """The RGB colour of one pixel (any mode)."""
    return image.convert("RGB").getpixel(xy)[:3]


def close(actual, expected, tolerance=40) -> bool:
    """Whether every channel of two colours differs by at most `tolerance`."""
    return all(abs(int(a) - int(e)) <= tolerance for a, e in zip(actual, expected, strict=True))


def centre(image: Image.Image) -> tuple[int, int]:
    """The centre pixel coordinate."""
    return image.width // 2, image.height // 2


# ---------------------------------------------------------------------------
# Orientation: a non-symmetric picture with a distinct colour per quadrant
# ---------------------------------------------------------------------------

CANON_SIZE = (60, 40)
QUADRANTS = {"top_left": RED, "top_right": GREEN, "bottom_left": BLUE, "bottom_right": YELLOW}

# The transpose that undoes each EXIF orientation's display transform (Pillow's exif_transpose applies the forward one).
_UNDO_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def canonical_image(size=CANON_SIZE) -> Image.Image:
    """The picture as it must be displayed: red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    width, height = size
    image = Image.new("RGB", size)
    image.paste(QUADRANTS["top_left"], (0, 0, width // 2, height // 2))
    image.paste(QUADRANTS["top_right"], (width // 2, 0, width, height // 2))
    image.paste(QUADRANTS["bottom_left"], (0, height // 2, width // 2, height))
    image.paste(QUADRANTS["bottom_right"], (width // 2, height // 2, width, height))
    return image


def stored_for_orientation(orientation: int, size=CANON_SIZE) -> Image.Image:
    """The pixels to store so that applying EXIF `orientation` displays the canonical picture."""
    undo = _UNDO_ORIENTATION.get(orientation)
    image = canonical_image(size)
    return image if undo is None else image.transpose(undo)


def quadrant_colours(image: Image.Image) -> dict[str, tuple[int, int, int]]:
    """The colour at the centre of each quadrant of a displayed image."""
    width, height = image.size
    points = {
        "top_left": (width // 4, height // 4),
        "top_right": (3 * width // 4, height // 4),
        "bottom_left": (width // 4, 3 * height // 4),
        "bottom_right": (3 * width // 4, 3 * height // 4),
    }
    rgb = image.convert("RGB")
    return {name: rgb.getpixel(point)[:3] for name, point in points.items()}


def exif_bytes(orientation=None, gps_secret=None, description=None) -> bytes:
    """EXIF bytes with an optional orientation, a GPS IFD (position + a secret map datum) and a description."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if description is not None:
        exif[0x010E] = description  # ImageDescription
        exif[0x013B] = description  # Artist
    if gps_secret is not None:
        exif[0x8825] = {
            1: "N",
            2: (48.0, 51.0, 29.0),
            3: "E",
            4: (2.0, 17.0, 40.0),
            0x12: gps_secret,  # GPSMapDatum, an ASCII tag we can search the output bytes for
        }
    return exif.tobytes()


def oriented_bytes(orientation: int, fmt="JPEG", size=CANON_SIZE) -> bytes:
    """An image file whose EXIF orientation (or format transform) makes it display as the canonical picture."""
    stored = stored_for_orientation(orientation, size)
    if fmt == "JPEG":
        return encode(stored, "JPEG", quality=95, exif=exif_bytes(orientation))
    if fmt == "TIFF":
        return encode(stored, "TIFF", exif=exif_bytes(orientation))
    if fmt in ("HEIF", "AVIF"):
        return encode(stored, fmt, quality=95, exif=exif_bytes(orientation))
    return encode(stored, fmt, exif=exif_bytes(orientation))


# ---------------------------------------------------------------------------
# Accepted formats, one builder each
# ---------------------------------------------------------------------------


def mpo_bytes(first=RED, second=BLUE, size=(40, 30)) -> bytes:
    """A two-image MPO (what Pillow reports for many phone JPEGs); the first image is the photo."""
    buffer = io.BytesIO()
    solid(first, size).save(buffer, "MPO", save_all=True, append_images=[solid(second, size)], quality=95)
    return buffer.getvalue()


def animated_bytes(fmt: str, colours=(RED, GREEN, BLUE), size=(90, 60)) -> bytes:
    """An animated GIF, WebP or APNG with one solid colour per frame."""
    frames = [solid(colour, size) for colour in colours]
    params = {"save_all": True, "append_images": frames[1:], "duration": 100, "loop": 0}
    if fmt == "WEBP":
        params["lossless"] = True
    return encode(frames[0], fmt, **params)


def format_sample(name: str, color=RED, size=(40, 30)) -> bytes:
    """A solid-colour image in one of the allowed input formats, by short name."""
    image = solid(color, size)
    builders = {
        "jpeg": lambda: encode(image, "JPEG", quality=95),
        "mpo": lambda: mpo_bytes(color, BLUE, size),
        "png": lambda: encode(image, "PNG"),
        "apng": lambda: animated_bytes("PNG", (color, GREEN), size),
        "webp": lambda: encode(image, "WEBP", lossless=True),
        "gif": lambda: encode(image, "GIF"),
        "tiff": lambda: encode(image, "TIFF"),
        "tiff_lzw": lambda: encode(image, "TIFF", compression="tiff_lzw"),
        "bmp": lambda: encode(image, "BMP"),
        "avif": lambda: encode(image, "AVIF", quality=95),
        "heif": lambda: encode(image, "HEIF", quality=95),
    }
    return builders[name]()


# Short name -> the SourceFacts.format the core must report.
ACCEPTED_FORMATS = {
    "jpeg": "JPEG",
    "mpo": "JPEG",
    "png": "PNG",
    "apng": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "tiff": "TIFF",
    "tiff_lzw": "TIFF",
    "bmp": "BMP",
    "avif": "AVIF",
    "heif": "HEIF",
}


# ---------------------------------------------------------------------------
# Rejected formats
# ---------------------------------------------------------------------------

EPS_TEXT = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 10 10
%%EndComments
newpath 0 0 moveto 10 0 lineto 10 10 lineto closepath fill
showpage
%%EOF
"""


def psd_bytes(size=(4, 3)) -> bytes:
    """A minimal valid 8-bit RGB Photoshop file with raw image data."""
    width, height = size
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layer and mask info
    return header + sections + struct.pack(">H", 0) + bytes([200]) * (width * height * 3)


def zip_bytes() -> bytes:
    """A ZIP archive holding one text file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("secret.txt", "ZIPPAYLOADSECRET " * 20)
    return buffer.getvalue()


def unsupported_sample(name: str) -> bytes:
    """Bytes of a format outside the allow-list (or not an image at all), by short name."""
    image = solid(RED, (16, 16))
    builders = {
        "eps_handwritten": lambda: EPS_TEXT,
        "eps_pillow": lambda: encode(image, "EPS"),
        "psd": psd_bytes,
        "pdf": lambda: encode(image, "PDF"),
        "svg": lambda: (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b'<rect width="10" height="10" fill="red"/></svg>'
        ),
        "ico": lambda: encode(image, "ICO"),
        "icns": lambda: encode(image, "ICNS"),
        "pcx": lambda: encode(image, "PCX"),
        "tga": lambda: encode(image, "TGA"),
        "jpeg2000_jp2": lambda: encode(image, "JPEG2000"),
        "jpeg2000_j2k": lambda: encode(image, "JPEG2000", no_jp2=True),
        "ppm": lambda: encode(image, "PPM"),
        "sgi": lambda: encode(image, "SGI"),
        "qoi": lambda: encode(image, "QOI"),
        "dds": lambda: encode(image, "DDS"),
        "im": lambda: encode(image, "IM"),
        "xbm": lambda: encode(image.convert("1"), "XBM"),
        "msp": lambda: encode(image.convert("1"), "MSP"),
        "spider": lambda: encode(image.convert("L"), "SPIDER"),
        "text": lambda: b"just some plain text, not an image\n",
        "html": lambda: b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        "zip": zip_bytes,
        "pdf_with_jpeg_inside": lambda: b"%PDF-1.4\n" + encode(image, "JPEG"),
        "zip_then_png": lambda: zip_bytes() + encode(image, "PNG"),
        "html_then_gif": lambda: b"<html><!--" + encode(image, "GIF") + b"--></html>",
    }
    return builders[name]()


UNSUPPORTED_NAMES = (
    "eps_handwritten",
    "eps_pillow",
    "psd",
    "pdf",
    "svg",
    "ico",
    "icns",
    "pcx",
    "tga",
    "jpeg2000_jp2",
    "jpeg2000_j2k",
    "ppm",
    "sgi",
    "qoi",
    "dds",
    "im",
    "xbm",
    "msp",
    "spider",
    "text",
    "html",
    "zip",
    "pdf_with_jpeg_inside",
    "zip_then_png",
    "html_then_gif",
)


def gif_zip_polyglot() -> bytes:
    """A valid GIF with a ZIP archive appended (a 'GIFAR')."""
    return encode(solid(RED, (16, 16)), "GIF") + zip_bytes()


# ---------------------------------------------------------------------------
# Hand-written headers: PNG chunks, bombs declaring huge dimensions
# ---------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_from_rows(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes, extra_chunks=()) -> bytes:
    """A PNG from already-filtered scanline bytes (each row prefixed by its filter byte)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + b"".join(extra_chunks)
        + png_chunk(b"IDAT", zlib.compress(raw, 9))
        + png_chunk(b"IEND", b"")
    )


def png_bomb(width=30000, height=30000) -> bytes:
    """A tiny RGB PNG whose IHDR declares `width` x `height`, with one (short) row of data."""
    row = b"\x00" + bytes(3 * min(width, 1024))
    return png_from_rows(width, height, 8, 2, row)


def png_16bit_rgb(array: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand from a uint16 (h, w, 3) array."""
    height, width, _ = array.shape
    big_endian = array.astype(">u2").tobytes()
    stride = width * 6
    raw = b"".join(b"\x00" + big_endian[y * stride : (y + 1) * stride] for y in range(height))
    return png_from_rows(width, height, 16, 2, raw)


def png_16bit_grey(value: int, size=(16, 16)) -> bytes:
    """A 16-bit greyscale PNG of one value, written by Pillow from mode I;16."""
    return encode(Image.new("I;16", size, value), "PNG")


def jpeg_bomb(width=65000, height=65000) -> bytes:
    """A small valid JPEG whose SOF marker is patched to declare `width` x `height`."""
    data = bytearray(encode(solid(RED, (16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_bomb(width=60000, height=60000) -> bytes:
    """A small GIF whose logical screen and first image descriptor declare `width` x `height`."""
    data = bytearray(encode(solid(RED, (16, 16)), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    table = 3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0
    descriptor = data.index(b"\x2c", 13 + table)
    struct.pack_into("<HH", data, descriptor + 5, width, height)
    return bytes(data)


def bmp_bomb(width=50000, height=50000) -> bytes:
    """A small 24-bit BMP whose info header declares `width` x `height`."""
    data = bytearray(encode(solid(RED, (16, 16)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def tiff_bomb(width=100000, height=100000) -> bytes:
    """A hand-written uncompressed greyscale TIFF declaring `width` x `height` with one tiny strip."""
    entries = [
        (256, 4, 1, width),  # ImageWidth LONG
        (257, 4, 1, height),  # ImageLength LONG
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression none
        (262, 3, 1, 1),  # Photometric BlackIsZero
        (273, 4, 1, 0),  # StripOffsets (patched below)
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    strip_offset = 8 + ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        if tag == 273:
            value = strip_offset
        if kind == 3:
            out += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, count, value)
    out += struct.pack("<I", 0) + bytes(16)
    return bytes(out)


def gif_descriptor_offsets(data: bytes) -> list[int]:
    """The offset of every image descriptor (0x2C) in a well-formed GIF, walking its blocks."""
    flags = data[10]
    position = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    offsets = []
    while data[position] != 0x3B:
        if data[position] == 0x21:
            position += 2
        else:
            offsets.append(position)
            local = data[position + 9]
            position += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0) + 1
        while data[position]:
            position += data[position] + 1
        position += 1
    return offsets


def gif_frame_bomb(width=20000, height=20000, frame=0) -> bytes:
    """A small animated GIF (16x16 screen, disposal 2) whose frame `frame` declares a `width` x `height` extent.

    Pillow grows the canvas to the extent and fills the extent while it seeks to that frame, before any check of ours
    that runs after opening or seeking could see it.
    """
    frames = [solid(colour, (16, 16)) for colour in (RED, GREEN, BLUE)]
    data = bytearray(
        encode(frames[0], "GIF", save_all=True, append_images=frames[1:], disposal=2, duration=100, loop=0)
    )
    struct.pack_into("<HH", data, gif_descriptor_offsets(bytes(data))[frame] + 5, width, height)
    return bytes(data)


GIF_CONTROL = b"!\xf9\x04\x00\x00\x00\x00\x00"  # a graphic control extension: no delay, no transparency
GIF_COMMENT = b"!\xfe\x05hello\x00"  # a comment extension of one sub-block


def gif_image(width=1, height=1, lzw_code_size=2) -> bytes:
    """An image descriptor declaring `width` x `height` at (0, 0), then LZW data of one pixel of colour 0."""
    # Codes of 3 bits, least significant first: clear (4), index 0, end of information (5).
    return b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + bytes([lzw_code_size]) + b"\x03\x44\x01\x00\x00"


def gif_by_hand(*blocks: bytes, screen=(1, 1)) -> bytes:
    """A GIF89a: a `screen` logical screen with a black-and-white global colour table, `blocks`, the trailer."""
    return (
        b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff" + b"".join(blocks) + b";"
    )


# What a web server sends for a missing page; read as a GIF's logical screen, "<htm" is 26684x28020.
HTML_PAGE = b"<html>\n<head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1></body>\n</html>\n"


BOMBS = {
    "png": png_bomb,
    "jpeg": jpeg_bomb,
    "gif": gif_bomb,
    "bmp": bmp_bomb,
    "tiff": tiff_bomb,
}


def png_with_huge_text(decompressed_mib=64, kind=b"zTXt") -> bytes:
    """A small valid PNG with a compressed text (zTXt) or ICC (iCCP) chunk that inflates to many MiB."""
    compressor = zlib.compressobj(9)
    block = bytes(1024 * 1024)
    payload = b"".join(compressor.compress(block) for _ in range(decompressed_mib)) + compressor.flush()
    key = b"Comment" if kind == b"zTXt" else b"icc"
    chunk = png_chunk(kind, key + b"\x00\x00" + payload)
    raw = b"".join(b"\x00" + bytes(3 * 8) for _ in range(8))
    return png_from_rows(8, 8, 8, 2, raw, extra_chunks=[chunk])


# ---------------------------------------------------------------------------
# TIFFs that make the decoders warn
# ---------------------------------------------------------------------------

LIBTIFF_COMPLAINT = "TIFFFetchNormalTag"


def rgb_tiff(size=(64, 48), colour=(200, 30, 40), deflate=True, extra_tags=(), samples_per_pixel=3) -> bytes:
    """A hand-written RGB TIFF with one strip (deflate: decoded by libtiff; raw: by Pillow's own reader), plus
    extra IFD entries given as (tag, type, count, 4 value bytes)."""
    width, height = size
    raw = bytes(colour) * (width * height)
    strip = zlib.compress(raw) if deflate else raw
    entries = [
        (256, 4, 1, struct.pack("<I", width)),
        (257, 4, 1, struct.pack("<I", height)),
        (258, 3, 3, None),  # BitsPerSample 8,8,8: stored after the IFD
        (259, 3, 1, struct.pack("<H", 8 if deflate else 1)),
        (262, 3, 1, struct.pack("<H", 2)),  # RGB
        (273, 4, 1, None),  # StripOffsets: after the IFD
        (277, 3, 1, struct.pack("<H", samples_per_pixel)),
        (278, 4, 1, struct.pack("<I", height)),
        (279, 4, 1, struct.pack("<I", len(strip))),
        *extra_tags,
    ]
    entries.sort(key=lambda entry: entry[0])
    after_ifd = 8 + 2 + 12 * len(entries) + 4
    bits_offset, strip_offset = after_ifd, after_ifd + 6
    out = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = struct.pack("<I", bits_offset)
        elif tag == 273:
            value = struct.pack("<I", strip_offset)
        out += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
    return out + struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8) + strip


def tiff_libtiff_complains(size=(64, 48), colour=(200, 30, 40)) -> bytes:
    """A deflate TIFF with an unknown tag of no valid type: libtiff reports it to its error handler (by default a
    line on stderr, printed from C) and decodes the image all the same."""
    return rgb_tiff(size, colour, deflate=True, extra_tags=[(65000, 0, 1, bytes(4))])


def tiff_pillow_warns(size=(64, 48), colour=(200, 30, 40)) -> bytes:
    """A raw TIFF with a tag whose data lies past the end of the file: Pillow's reader warns (a Python UserWarning),
    skips the tag and decodes the image all the same."""
    return rgb_tiff(size, colour, deflate=False, extra_tags=[(65001, 1, 64, struct.pack("<I", 0x00FFFFF0))])


def tiff_pillow_logs_an_error() -> bytes:
    """A TIFF claiming 65535 samples per pixel: Pillow's reader logs an error through `logging` (printed bare on
    stderr by Python's last-resort handler when nothing is configured) and refuses the file."""
    return rgb_tiff(deflate=False, samples_per_pixel=65535)


# ---------------------------------------------------------------------------
# ICC profiles written by hand (ImageCms can only create sRGB / LAB / XYZ)
# ---------------------------------------------------------------------------

_D50 = (0.9642, 1.0, 0.8249)
# sRGB primaries adapted to D50, as in the sRGB ICC profile.
_SRGB_RED_XYZ = (0.4361, 0.2225, 0.0139)
_SRGB_GREEN_XYZ = (0.3851, 0.7169, 0.0971)
_SRGB_BLUE_XYZ = (0.1431, 0.0606, 0.7141)


def _s15(value: float) -> bytes:
    """An ICC s15Fixed16Number."""
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz) -> bytes:
    """An ICC XYZType tag body."""
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    """An ICC v2 textDescriptionType tag body."""
    ascii_text = text.encode("ascii") + b"\x00"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text + bytes(4 + 4 + 2 + 1 + 67)


def _icc_profile(device_class: bytes, colour_space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """Assemble an ICC v2.1 profile from its header fields and tag bodies."""
    count = len(tags)
    offset = 128 + 4 + 12 * count
    table = struct.pack(">I", count)
    body = b""
    for signature, data in tags.items():
        padded = data + bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + device_class
        + colour_space
        + pcs
        + bytes(12)
        + b"acsp"
        + bytes(4 * 7)
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in _D50)
        + bytes(4)
    )
    header += bytes(128 - len(header))
    return header + table + body


@functools.cache
def swapped_rgb_profile() -> bytes:
    """A matrix/TRC RGB profile whose red and blue primaries are swapped: stored (255,0,0) displays blue."""
    gamma = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    return _icc_profile(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        {
            b"desc": _desc_tag("swapped red-blue test profile"),
            b"wtpt": _xyz_tag(_D50),
            b"rXYZ": _xyz_tag(_SRGB_BLUE_XYZ),
            b"gXYZ": _xyz_tag(_SRGB_GREEN_XYZ),
            b"bXYZ": _xyz_tag(_SRGB_RED_XYZ),
            b"rTRC": gamma,
            b"gTRC": gamma,
            b"bTRC": gamma,
        },
    )


def cmyk_profile_target(c: int, m: int, y: int, k: int) -> tuple[int, int, int]:
    """The sRGB colour the test CMYK profile assigns to a CMYK corner (0/255 values).

    Cyan ink removes blue and yellow ink removes red, unlike a naive inversion.
    """
    c, m, y, k = (v / 255 for v in (c, m, y, k))
    return (round(255 * (1 - y) * (1 - k)), round(255 * (1 - m) * (1 - k)), round(255 * (1 - c) * (1 - k)))


@functools.cache
def weird_cmyk_profile() -> bytes:
    """A CMYK -> Lab lut8 profile (2-point CLUT) mapping each CMYK corner to `cmyk_profile_target`."""
    corners = [(c, m, y, k) for c in (0, 255) for m in (0, 255) for y in (0, 255) for k in (0, 255)]
    targets = Image.new("RGB", (len(corners), 1))
    targets.putdata([cmyk_profile_target(*corner) for corner in corners])
    lab = ImageCms.profileToProfile(
        targets, ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), outputMode="LAB"
    )
    clut = b"".join(bytes(lab.getpixel((x, 0))) for x in range(lab.width))
    identity = bytes(range(256))
    matrix = b"".join(_s15(1.0 if row == col else 0.0) for row in range(3) for col in range(3))
    lut = b"mft1" + bytes(4) + bytes([4, 3, 2, 0]) + matrix + identity * 4 + clut + identity * 3
    return _icc_profile(
        b"prtr",
        b"CMYK",
        b"Lab ",
        {b"desc": _desc_tag("weird CMYK test profile"), b"wtpt": _xyz_tag(_D50), b"A2B0": lut},
    )


@functools.cache
def srgb_profile() -> bytes:
    """The bytes of an sRGB ICC profile made by littleCMS."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def is_srgb_or_untagged(image: Image.Image, tolerance=6) -> bool:
    """Whether an output either has no ICC profile or one that behaves like sRGB on a set of test colours."""
    icc = image.info.get("icc_profile")
    if not icc:
        return True
    patch = Image.new("RGB", (6, 1))
    colours = [RED, GREEN, BLUE, (128, 128, 128), (200, 100, 50), (20, 200, 180)]
    patch.putdata(colours)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    converted = ImageCms.profileToProfile(patch, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    return all(close(converted.getpixel((x, 0)), e, tolerance) for x, e in enumerate(colours))


# ---------------------------------------------------------------------------
# Alpha
# ---------------------------------------------------------------------------


def half_transparent(mode="RGBA", size=(40, 20)) -> Image.Image:
    """An image whose left half is fully transparent and right half opaque red (or grey for LA)."""
    width, height = size
    if mode == "LA":
        image = Image.new("LA", size, (100, 255))
        image.paste((100, 0), (0, 0, width // 2, height))
        return image
    image = Image.new("RGBA", size, (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (0, 0, width // 2, height))
    return image


def palette_with_transparency(size=(40, 20)) -> bytes:
    """A palette PNG whose index 0 (left half) is transparent and index 1 (right half) is opaque red."""
    width, height = size
    image = Image.new("P", size, 1)
    image.putpalette([0, 0, 255, 255, 0, 0] + [0] * (256 * 3 - 6))
    image.paste(0, (0, 0, width // 2, height))
    return encode(image, "PNG", transparency=0)


# ---------------------------------------------------------------------------
# Patterns for resize quality
# ---------------------------------------------------------------------------


def pattern_image(size=(512, 384)) -> Image.Image:
    """A checkerboard over a colour gradient: aliasing-prone detail plus smooth areas."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    checker = ((x // 3 + y // 3) % 2) * 80
    red = (x * 255 // max(width - 1, 1)).astype(np.int32)
    green = (y * 255 // max(height - 1, 1)).astype(np.int32)
    blue = np.full_like(red, 128)
    array = np.stack([red, green, blue], axis=-1)
    array = np.clip(array + checker[..., None] - 40, 0, 255).astype(np.uint8)
    return Image.fromarray(array, "RGB")


# ---------------------------------------------------------------------------
# Calling the core
# ---------------------------------------------------------------------------


def options(output_format=None, quality=80, **overrides):
    """ImagingOptions with the given fields overridden; `output_format` (and `quality`) make the one encoding."""
    from image_pipeline.options import Encoding, ImagingOptions

    if output_format is not None:
        overrides["encodings"] = (Encoding(output_format, quality),)
    return ImagingOptions(**overrides)


def run(data: bytes, **overrides):
    """Process bytes with options(**overrides) and return the ProcessedImage."""
    from image_pipeline.imaging import make_variants

    return make_variants(data, options(**overrides))


def rejection(data: bytes, **overrides):
    """Process bytes that must be refused; return the ImageRejected (fails the test if anything else happens)."""
    import pytest

    from image_pipeline.errors import ImageRejected

    with pytest.raises(ImageRejected) as info:
        run(data, **overrides)
    error = info.value
    assert isinstance(error.message, str) and error.message.strip(), "a rejection carries a human message"
    return error
