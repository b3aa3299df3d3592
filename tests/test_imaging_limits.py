"""Limits are enforced from headers, before a full decode: bytes, pixels (canvas, frame, page), frames, bombs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from PIL import Image

from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.imaging.decode import gif_canvas
from image_pipeline.options import OutputFormat
from tests.imaging_fixtures import (
    BOMBS,
    GIF_COMMENT,
    GIF_CONTROL,
    GREEN,
    HTML_PAGE,
    RED,
    animated_bytes,
    encode,
    format_sample,
    gif_by_hand,
    gif_descriptor_offsets,
    gif_frame_bomb,
    gif_image,
    noise,
    png_bomb,
    rejection,
    run,
    solid,
)

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# Input bytes
# ---------------------------------------------------------------------------


def test_input_at_the_byte_limit_is_accepted_and_one_more_byte_is_too_large():
    data = encode(noise((32, 32)), "PNG")
    assert run(data, max_input_bytes=len(data)).source.bytes == len(data)
    assert rejection(data, max_input_bytes=len(data) - 1).code is RejectionCode.TOO_LARGE


def test_byte_limit_is_checked_before_decoding():
    # A bomb that is also over the byte limit is refused for its bytes, quickly.
    data = png_bomb()
    start = time.perf_counter()
    assert len(data) > 50
    error = rejection(data, max_input_bytes=50, max_pixels=10**12)
    assert error.code is RejectionCode.TOO_LARGE
    assert time.perf_counter() - start < 2


# ---------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------

PIXEL_FORMATS = ["jpeg", "png", "webp", "gif", "tiff", "bmp", "avif", "heif", "mpo", "apng"]


@pytest.mark.parametrize("name", PIXEL_FORMATS)
def test_max_pixels_is_configurable(name):
    data = format_sample(name, RED, (40, 40))
    assert rejection(data, max_pixels=1000).code is RejectionCode.TOO_LARGE
    assert run(data, max_pixels=1600).source.width == 40


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_header_bombs_are_too_large_quickly(name):
    data = BOMBS[name]()
    assert len(data) < 10_000
    start = time.perf_counter()
    assert rejection(data).code is RejectionCode.TOO_LARGE
    assert time.perf_counter() - start < 2


def test_limit_applies_below_pillows_own_bomb_error():
    # 120 MP: over the 100 MP default, under the 179 MP where Pillow itself raises (it only warns from 89 MP).
    start = time.perf_counter()
    assert rejection(png_bomb(12000, 10000)).code is RejectionCode.TOO_LARGE
    assert time.perf_counter() - start < 2


def test_decompression_bomb_warning_never_passes_silently():
    # With a generous configured limit, a 144 MP header still ends in a typed rejection, not a warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = rejection(png_bomb(12000, 12000), max_pixels=200_000_000)
    assert error.code in (RejectionCode.TOO_LARGE, RejectionCode.CORRUPT_IMAGE)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_every_page_counts_against_the_pixel_limit():
    # A small first page must not hide a big second page.
    buffer = io.BytesIO()
    solid(RED, (10, 10)).save(buffer, "TIFF", save_all=True, append_images=[solid(GREEN, (50, 50))])
    assert rejection(buffer.getvalue(), max_pixels=1000).code is RejectionCode.TOO_LARGE


@pytest.mark.parametrize("keep_animation", [False, True])
@pytest.mark.parametrize("frame", [0, 1, 2])
def test_a_gif_frame_extent_past_the_limit_is_too_large_before_opening(frame, keep_animation):
    # Pillow grows the canvas to a frame's extent, and fills that extent, inside open() or seek().
    start = time.perf_counter()
    error = rejection(gif_frame_bomb(20000, 20000, frame), keep_animation=keep_animation)
    assert error.code is RejectionCode.TOO_LARGE and "20000x20000" in error.message
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("keep_animation", [False, True])
def test_gif_frame_extents_within_the_limit_are_not_too_large(keep_animation):
    data = gif_frame_bomb(40, 30, frame=1)  # a 40x30 extent over 16x16 pixels of data
    try:
        result = run(data, max_pixels=1200, keep_animation=keep_animation)
    except ImageRejected as error:
        assert error.code is RejectionCode.CORRUPT_IMAGE  # the frame's data does not fill its extent
    else:
        assert (result.source.width, result.source.height) == (16, 16)  # a still is the first frame's canvas


def test_gif_canvas_reads_every_frame_extent_from_the_headers():
    data = gif_frame_bomb(300, 40, frame=2)
    first, _, third = gif_descriptor_offsets(data)
    assert gif_canvas(animated_bytes("GIF", size=(90, 60))) == (90, 60)
    assert gif_canvas(data) == (300, 40)
    # Cut short: the frames read so far, the one whose data is cut included; no frame at all, nothing to allocate.
    assert gif_canvas(data[: third + 12]) == (300, 40)
    assert gif_canvas(data[: third + 5]) == (16, 16)
    assert gif_canvas(data[: first + 5]) == (0, 0)


def test_a_44_byte_gif_claiming_a_65535_square_frame_is_too_large():
    data = gif_by_hand(GIF_CONTROL, gif_image(65535, 65535))
    assert len(data) == 44
    error = rejection(data)
    assert error.code is RejectionCode.TOO_LARGE and "65535x65535" in error.message


def test_a_web_page_behind_a_gif_signature_is_corrupt_not_measured():
    # The tracker's case: the logical screen read from "<htm" is 26684x28020, and Pillow would open the file.
    error = rejection(b"GIF89a" + HTML_PAGE)
    assert error.code is RejectionCode.CORRUPT_IMAGE and "26684x28020" not in error.message


# A byte that opens no GIF block where one must start: not a GIF, whatever sizes it seems to declare.
CORRUPT_GIFS = {
    "html_after_the_signature": lambda: b"GIF87a" + HTML_PAGE,
    "garbage_byte_between_blocks": lambda: gif_by_hand(GIF_CONTROL, b"\x99", gif_image()),
    "zero_byte_before_the_trailer": lambda: gif_by_hand(gif_image(), b"\x00"),
    "garbage_after_a_huge_frame": lambda: gif_by_hand(gif_image(65535, 65535), b"<"),
    "lzw_code_size_past_the_decoders": lambda: gif_by_hand(gif_image(lzw_code_size=13)),
    # Text whose first byte after the logical screen happens to open a block: an image descriptor read from text has
    # an impossible LZW code size; an extension's sub-blocks run to the end of the text, and no frame is found.
    "text_with_a_comma_where_a_block_starts": lambda: b"GIF89a<html>\n," + HTML_PAGE,
    "text_with_a_bang_where_a_block_starts": lambda: b"GIF89a<html>\n!" + HTML_PAGE,
    "text_with_a_semicolon_where_a_block_starts": lambda: b"GIF89a<html>\n;" + HTML_PAGE,
}


@pytest.mark.parametrize("name", sorted(CORRUPT_GIFS))
def test_a_gif_whose_blocks_are_not_gif_blocks_is_corrupt(name):
    assert rejection(CORRUPT_GIFS[name]()).code is RejectionCode.CORRUPT_IMAGE


# Well-formed blocks, or cut short after the frame, declaring more pixels than the limit.
HUGE_GIFS = {
    "huge_frame_after_an_extension": lambda: gif_by_hand(GIF_COMMENT, gif_image(20000, 20000)),
    "huge_frame_cut_short": lambda: gif_by_hand(GIF_CONTROL, gif_image(65535, 65535))[:-5],
    "huge_screen_and_frame": lambda: gif_by_hand(gif_image(20000, 20000), screen=(20000, 20000)),
}


@pytest.mark.parametrize("name", sorted(HUGE_GIFS))
def test_a_well_formed_gif_declaring_a_huge_frame_is_too_large_quickly(name):
    start = time.perf_counter()
    assert rejection(HUGE_GIFS[name]()).code is RejectionCode.TOO_LARGE
    assert time.perf_counter() - start < 2


WELL_FORMED_GIFS = {
    "pillow_still": lambda: encode(solid(RED, (40, 30)), "GIF"),
    "pillow_animated": lambda: animated_bytes("GIF", size=(40, 30)),
    "by_hand_one_pixel": lambda: gif_by_hand(GIF_CONTROL, gif_image()),
    "by_hand_extensions_between_frames": lambda: gif_by_hand(gif_image(), GIF_COMMENT, GIF_CONTROL, gif_image()),
}


@pytest.mark.parametrize("name", sorted(WELL_FORMED_GIFS))
def test_well_formed_small_gifs_still_process(name):
    assert run(WELL_FORMED_GIFS[name]()).source.format == "GIF"


def test_limit_counts_displayed_pixels_of_oriented_images_the_same():
    # Rotation does not change the pixel count: a 40x25 image with orientation 6 is exactly 1000 pixels.
    from tests.imaging_fixtures import exif_bytes

    data = encode(solid(RED, (40, 25)), "JPEG", exif=exif_bytes(6))
    result = run(data, max_pixels=1000)
    assert (result.source.width, result.source.height) == (25, 40)
    assert rejection(data, max_pixels=999).code is RejectionCode.TOO_LARGE


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("keep_animation", [False, True])
@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_frame_limit(fmt, keep_animation):
    colours = (RED, GREEN, (0, 0, 255), (255, 255, 0), (0, 255, 255))
    data = animated_bytes(fmt, colours, size=(16, 16))
    assert rejection(data, max_frames=4, keep_animation=keep_animation).code is RejectionCode.TOO_LARGE
    assert run(data, max_frames=5, keep_animation=keep_animation, output_format=OutputFormat.WEBP).source.frames == 5


# ---------------------------------------------------------------------------
# Memory: run in a fresh interpreter with an address-space cap and measure peak RSS growth
# ---------------------------------------------------------------------------

MEMORY_SCRIPT = r"""
import json, resource, sys, time
from image_pipeline.errors import ImageRejected
from image_pipeline.imaging import make_variants
from image_pipeline.options import ImagingOptions
from tests.imaging_fixtures import BOMBS, encode, gif_frame_bomb, png_bomb, png_with_huge_text, solid

make_variants(encode(solid((1, 2, 3), (16, 16)), "PNG"), ImagingOptions())  # warm up imports and pools
cases = {f"bomb_{name}": build() for name, build in BOMBS.items()}
cases["png_30000_square"] = png_bomb(30000, 30000)
cases["gif_frame_extent"] = gif_frame_bomb(20000, 20000, 0)
cases["huge_ztxt"] = png_with_huge_text(256, b"zTXt")
cases["huge_iccp"] = png_with_huge_text(256, b"iCCP")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 768 * 2**20, resource.RLIM_INFINITY))
out = {}
for name, data in cases.items():
    start = time.perf_counter()
    try:
        make_variants(data, ImagingOptions())
        code = "ok"
    except ImageRejected as error:
        code = error.code.value
    except BaseException as error:
        code = "escaped:" + type(error).__name__
    out[name] = [code, time.perf_counter() - start, len(data)]
out["rss_growth_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def memory_report():
    """Results of processing bombs and huge chunks in a separate, address-space-limited interpreter."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", [f"bomb_{name}" for name in sorted(BOMBS)] + ["png_30000_square", "gif_frame_extent"])
def test_bombs_are_refused_without_allocating(memory_report, name):
    code, seconds, _ = memory_report[name]
    assert code == "too_large"
    assert seconds < 2


@pytest.mark.parametrize("name", ["huge_ztxt", "huge_iccp"])
def test_huge_compressed_chunks_do_not_blow_memory(memory_report, name):
    code, seconds, size = memory_report[name]
    assert size < 1_000_000  # the fixture inflates to 256 MiB
    assert code in ("ok", "corrupt_image", "too_large"), code
    assert seconds < 5


def test_peak_memory_stays_small_across_all_hostile_cases(memory_report):
    assert memory_report["rss_growth_kib"] < 100 * 1024


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_fixture_bombs_really_declare_huge_sizes(name):
    try:
        width, height = Image.open(io.BytesIO(BOMBS[name]())).size
    except Image.DecompressionBombError:
        return  # past twice the backstop the core sets at import: huge indeed
    assert width * height > 500_000_000
