"""Format allow-list detected from the bytes, typed rejections, and no stray exception for any hostile input."""

from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from image_pipeline.errors import ImageRejected, RejectionCode
from tests.imaging_fixtures import (
    ACCEPTED_FORMATS,
    HTML_PAGE,
    PNG_SIGNATURE,
    RED,
    UNSUPPORTED_NAMES,
    close,
    decode,
    encode,
    exif_bytes,
    format_sample,
    gif_zip_polyglot,
    noise,
    png_chunk,
    png_from_rows,
    rejection,
    rgb_at,
    run,
    solid,
    srgb_profile,
    unsupported_sample,
)

ALLOWED_PILLOW_DECODERS = {"JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF", "HEIF"}
TYPED_CODES = {RejectionCode.CORRUPT_IMAGE, RejectionCode.UNSUPPORTED_FORMAT, RejectionCode.TOO_LARGE}


# ---------------------------------------------------------------------------
# Allow-list
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACCEPTED_FORMATS))
def test_allowed_formats_are_accepted(name):
    data = format_sample(name, RED, (40, 30))
    result = run(data)
    assert result.source.format == ACCEPTED_FORMATS[name]
    assert (result.source.width, result.source.height, result.source.bytes) == (40, 30, len(data))
    assert [variant.name for variant in result.variants] == ["thumb", "medium", "large"]
    for variant in result.variants:
        image = decode(variant.primary.data)
        assert image.size == (40, 30)
        assert close(rgb_at(image, (20, 15)), RED, 30)


def test_mpo_yields_its_first_image():
    result = run(format_sample("mpo", RED))
    assert close(rgb_at(decode(result.variants[0].primary.data), (5, 5)), RED, 30)


@pytest.mark.parametrize("name", UNSUPPORTED_NAMES)
def test_other_formats_are_unsupported(name):
    try:
        data = unsupported_sample(name)
    except (OSError, KeyError) as error:  # e.g. Pillow built without openjpeg
        pytest.skip(f"cannot build {name}: {error}")
    assert rejection(data).code is RejectionCode.UNSUPPORTED_FORMAT


@pytest.mark.parametrize("name", UNSUPPORTED_NAMES)
def test_unsupported_formats_never_reach_another_decoder(name, monkeypatch):
    Image.init()
    reached = []

    def guard(fmt):
        def factory(fp, filename=None):
            reached.append(fmt)
            raise SyntaxError(f"{fmt} decoder must not be reached")

        return factory

    for fmt, (_, accept) in list(Image.OPEN.items()):
        if fmt not in ALLOWED_PILLOW_DECODERS:
            monkeypatch.setitem(Image.OPEN, fmt, (guard(fmt), accept))
    try:
        data = unsupported_sample(name)
    except (OSError, KeyError) as error:
        pytest.skip(f"cannot build {name}: {error}")
    with pytest.raises(ImageRejected):
        run(data)
    assert reached == []


@pytest.mark.parametrize("name", ["eps_handwritten", "eps_pillow"])
def test_eps_never_starts_ghostscript(name, monkeypatch):
    from PIL import EpsImagePlugin

    started = []

    class NoProcess:
        """A Popen stand-in that records instead of starting anything."""

        def __init__(self, *args, **kwargs):
            started.append(args)
            raise OSError("no subprocess may be started")

    monkeypatch.setattr(subprocess, "Popen", NoProcess)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: started.append(a) or None)
    assert rejection(unsupported_sample(name)).code is RejectionCode.UNSUPPORTED_FORMAT
    assert started == []


def test_gif_zip_polyglot_leaks_nothing_but_pixels():
    # A GIF with an archive appended is a valid GIF: either refuse it or keep only its pixels.
    data = gif_zip_polyglot()
    try:
        result = run(data)
    except ImageRejected as error:
        assert error.code in TYPED_CODES
        return
    assert result.source.format == "GIF"
    for variant in result.variants:
        assert b"ZIPPAYLOADSECRET" not in variant.primary.data and b"PK\x03\x04" not in variant.primary.data


@pytest.mark.parametrize("empty", [b""])
def test_empty_bytes(empty):
    assert rejection(empty).code is RejectionCode.EMPTY


# ---------------------------------------------------------------------------
# Corrupt and truncated inputs
# ---------------------------------------------------------------------------

TRUNCATABLE = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF"]


def _photo(fmt: str) -> bytes:
    """A 64x64 noise image in `fmt` (noise keeps the pixel data large, so a cut lands inside it)."""
    image = noise((64, 64), seed=5)
    params = {"quality": 90} if fmt in ("JPEG", "AVIF", "HEIF", "WEBP") else {}
    return encode(image, fmt, **params)


@pytest.mark.parametrize("fraction", [0.5, 0.75])
@pytest.mark.parametrize("fmt", TRUNCATABLE)
def test_truncated_file_is_corrupt(fmt, fraction):
    data = _photo(fmt)
    assert rejection(data[: int(len(data) * fraction)]).code is RejectionCode.CORRUPT_IMAGE


MAGICS = {
    "jpeg": b"\xff\xd8\xff\xe0",
    "png": PNG_SIGNATURE,
    "gif87": b"GIF87a",
    "gif89": b"GIF89a",
    "webp": b"RIFF\x40\x00\x00\x00WEBPVP8 ",
    "tiff_le": b"II*\x00",
    "tiff_be": b"MM\x00*",
    "bmp": b"BM",
    "avif": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",
    "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
}


@pytest.mark.parametrize("tail", ["nothing", "zeros", "random"])
@pytest.mark.parametrize("magic", sorted(MAGICS))
def test_garbage_behind_a_valid_magic_is_a_typed_rejection(magic, tail):
    rng = np.random.default_rng(len(magic))
    body = {"nothing": b"", "zeros": bytes(300), "random": rng.integers(0, 256, 300, dtype=np.uint8).tobytes()}[tail]
    assert rejection(MAGICS[magic] + body).code in TYPED_CODES


# Text renamed to an image. The long page reaches past the length a JPEG's APP0 reads from "<h" (15464 bytes), so the
# JPEG reader goes on to look for its next marker in the text.
TEXTS = {"html": HTML_PAGE, "long_html": HTML_PAGE * 200, "plain": b"Hello, world; this is not an image!\n" * 8}
# The bare JPEG signature too: then the text is where the first marker must be.
SIGNATURES = {**MAGICS, "jpeg_soi": b"\xff\xd8\xff"}


@pytest.mark.parametrize("text", sorted(TEXTS))
@pytest.mark.parametrize("signature", sorted(SIGNATURES))
def test_text_behind_a_valid_signature_is_corrupt_not_measured(signature, text):
    # No header reader may take sizes from the text: that would refuse a damaged file as a bomb.
    assert rejection(SIGNATURES[signature] + TEXTS[text]).code is RejectionCode.CORRUPT_IMAGE


def _png_with_ihdr(width, height, bit_depth=8, colour_type=2, fix_crc=True) -> bytes:
    """A PNG with an arbitrary IHDR, optionally with a wrong CRC."""
    data = png_from_rows(1, 1, 8, 2, b"\x00\x00\x00\x00")
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    chunk = png_chunk(b"IHDR", ihdr)
    if not fix_crc:
        chunk = chunk[:-4] + b"\x00\x00\x00\x00"
    return PNG_SIGNATURE + chunk + data[len(PNG_SIGNATURE) + 25 :]


def _patched(data: bytes, offset: int, fmt: str, *values) -> bytes:
    """Bytes with struct-packed values written at `offset`."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _jpeg_sof(width, height) -> bytes:
    """A small JPEG whose SOF declares the given size."""
    data = encode(solid(RED, (16, 16)), "JPEG")
    return _patched(data, data.index(b"\xff\xc0") + 5, ">HH", height, width)


def _tiff_with_ifd_offset(offset) -> bytes:
    """A small TIFF whose first-IFD pointer is replaced."""
    return _patched(encode(solid(RED, (8, 8)), "TIFF"), 4, "<I", offset)


HOSTILE_REJECTED = {
    "one_byte": lambda: b"\x00",
    "png_bad_ihdr_crc": lambda: _png_with_ihdr(1, 1, fix_crc=False),
    "png_zero_size": lambda: _png_with_ihdr(0, 0),
    "png_bad_bit_depth": lambda: _png_with_ihdr(4, 4, bit_depth=7),
    "png_bad_colour_type": lambda: _png_with_ihdr(4, 4, colour_type=5),
    "png_no_idat": lambda: (
        PNG_SIGNATURE + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) + png_chunk(b"IEND", b"")
    ),
    "png_bad_zlib": lambda: (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", b"\x78\x9cnot zlib at all")
        + png_chunk(b"IEND", b"")
    ),
    "jpeg_zero_size": lambda: _jpeg_sof(0, 0),
    "jpeg_only_soi_eoi": lambda: b"\xff\xd8\xff\xd9",
    "gif_no_image": lambda: encode(solid(RED, (8, 8)), "GIF")[: 13 + 6] + b";",
    "bmp_zero_size": lambda: _patched(encode(solid(RED, (8, 8)), "BMP"), 18, "<ii", 0, 0),
    "bmp_bad_bits": lambda: _patched(encode(solid(RED, (8, 8)), "BMP"), 28, "<H", 13),
    "bmp_bad_offset": lambda: _patched(encode(solid(RED, (8, 8)), "BMP"), 10, "<I", 0xFFFFFFF0),
    "tiff_ifd_past_end": lambda: _tiff_with_ifd_offset(0x7FFFFFF0),
    "tiff_ifd_zero": lambda: _tiff_with_ifd_offset(0),
    "webp_riff_only": lambda: b"RIFF\x04\x00\x00\x00WEBP",
    "webp_bad_chunk_size": lambda: _patched(encode(solid(RED, (8, 8)), "WEBP"), 16, "<I", 0x7FFFFFF0),
    "heic_ftyp_only": lambda: MAGICS["heic"],
    "avif_ftyp_junk": lambda: MAGICS["avif"] + b"\x00\x00\x00\x08mdat" + b"\xff" * 100,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_REJECTED))
def test_hostile_inputs_raise_only_image_rejected(name):
    assert rejection(HOSTILE_REJECTED[name]()).code in TYPED_CODES


def _jpeg_with_app1(payload: bytes) -> bytes:
    """A small JPEG with an extra APP1 segment carrying `payload` right after SOI."""
    data = encode(solid(RED, (16, 16)), "JPEG", quality=95)
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def _self_referencing_exif() -> bytes:
    """EXIF whose IFD0 points at itself as the next IFD."""
    body = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHII", 0x0112, 3, 1, 6 << 16)
    body += struct.pack(">I", 8)
    return b"Exif\x00\x00" + body


HOSTILE_ANY = {
    "jpeg_exif_garbage": lambda: _jpeg_with_app1(b"Exif\x00\x00" + b"\xde\xad\xbe\xef" * 30),
    "jpeg_exif_truncated": lambda: _jpeg_with_app1(exif_bytes(6)[:12]),
    "jpeg_exif_loop": lambda: _jpeg_with_app1(_self_referencing_exif()),
    "jpeg_orientation_as_text": lambda: encode(solid(RED, (16, 16)), "JPEG", exif=_text_orientation()),
    "jpeg_trailing_garbage": lambda: encode(solid(RED, (16, 16)), "JPEG") + b"\x00garbage" * 50,
    "jpeg_broken_icc_chunks": lambda: _jpeg_with_app1(b"ICC_PROFILE\x00\x05\x02" + srgb_profile()[:100]),
    "png_exif_garbage": lambda: _png_with_chunk(b"eXIf", b"\xde\xad" * 40),
    "png_iccp_garbage": lambda: _png_with_chunk(b"iCCP", b"icc\x00\x00" + b"not zlib"),
    "png_unknown_chunk": lambda: _png_with_chunk(b"zzZz", b"whatever"),
    "png_text_no_separator": lambda: _png_with_chunk(b"tEXt", b"no separator here"),
    "png_bad_trns": lambda: _png_with_chunk(b"tRNS", b"\x00" * 40),
    "gif_zip_polyglot": gif_zip_polyglot,
    "gif_zero_logical_screen": lambda: _patched(encode(solid(RED, (8, 8)), "GIF"), 6, "<HH", 0, 0),
    "webp_exif_garbage": lambda: encode(solid(RED, (8, 8)), "WEBP", exif=b"\xde\xad\xbe\xef" * 8),
}


def _text_orientation() -> bytes:
    """EXIF whose Orientation tag holds the text '6' (type ASCII) instead of a SHORT."""
    body = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
    body += struct.pack(">HHI", 0x0112, 2, 2) + b"6\x00\x00\x00" + struct.pack(">I", 0)
    return b"Exif\x00\x00" + body


def _png_with_chunk(kind: bytes, payload: bytes) -> bytes:
    """A valid 8x8 PNG with one extra chunk before IDAT."""
    raw = b"".join(b"\x00" + bytes([255, 0, 0]) * 8 for _ in range(8))
    return png_from_rows(8, 8, 8, 2, raw, extra_chunks=[png_chunk(kind, payload)])


@pytest.mark.parametrize("name", sorted(HOSTILE_ANY))
def test_odd_but_decodable_inputs_succeed_or_are_rejected_cleanly(name):
    data = HOSTILE_ANY[name]()
    try:
        result = run(data)
    except ImageRejected as error:
        assert error.code in TYPED_CODES
    else:
        assert result.variants and all(decode(variant.primary.data).size for variant in result.variants)


def _mutate(data: bytes, edits, cut) -> bytes:
    """Overwrite bytes at the given relative positions and optionally truncate."""
    out = bytearray(data)
    for position, value in edits:
        out[int(position * (len(out) - 1))] = value
    return bytes(out[: max(1, int(len(out) * cut))]) if cut < 1 else bytes(out)


FUZZ_SEEDS = {
    fmt: encode(noise((24, 16), seed=2), fmt, **({"quality": 80} if fmt in ("JPEG", "WEBP") else {}))
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(FUZZ_SEEDS)),
    edits=st.lists(st.tuples(st.floats(0, 0.3), st.integers(0, 255)), max_size=4),
    cut=st.sampled_from([1.0, 1.0, 0.9, 0.6, 0.3, 0.1]),
)
def test_mutated_images_never_raise_anything_but_image_rejected(fmt, edits, cut):
    # Edits land in the first 30% of the file, where the headers are.
    data = _mutate(FUZZ_SEEDS[fmt], edits, cut)
    try:
        run(data, max_pixels=4_000_000)
    except ImageRejected as error:
        assert error.code in TYPED_CODES | {RejectionCode.EMPTY}
