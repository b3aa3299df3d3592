"""GIF and TIFF outputs, written as sharp writes them for the Resize Images extension, and encodings that take only
the first frame of an animation the options keep."""

from __future__ import annotations

import pytest
from PIL import Image

from image_pipeline.imaging import make_variants
from image_pipeline.options import Encoding, ImagingOptions, OutputFormat, Variant
from tests.imaging_fixtures import (
    BLUE,
    GREEN,
    RED,
    close,
    decode,
    encode,
    half_transparent,
    noise,
    rgb_at,
)

GIF = OutputFormat.GIF
TIFF = OutputFormat.TIFF
# What every TIFF holds to describe its pixels: size, samples, compression, colour, strips, JPEG tables, resolution.
TIFF_LAYOUT_TAGS = {256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 284, 296, 339, 347, 530, 532}
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">XMPSECRETPACKET</x:xmpmeta>'


def animated_gif(colours, durations, size=(90, 60), loop: int | None = 0, transparent_halves=False) -> bytes:
    """An animated GIF of solid frames; with `transparent_halves`, frame i is transparent on the left when i is even,
    on the right when odd (so a frame drawn over the last one would show through)."""
    frames = []
    for index, colour in enumerate(colours):
        frame = Image.new("RGBA", size, (*colour, 255))
        if transparent_halves:
            half = (0, 0, size[0] // 2, size[1]) if index % 2 == 0 else (size[0] // 2, 0, *size)
            frame.paste((0, 0, 0, 0), half)
        frames.append(frame)
    params = {"save_all": True, "append_images": frames[1:], "duration": list(durations), "disposal": 2}
    if loop is not None:
        params["loop"] = loop
    return encode(frames[0], "GIF", **params)


def frames_of(image: Image.Image) -> list[tuple[Image.Image, int | None]]:
    """Every frame of a decoded output as RGBA, with its duration."""
    frames = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()
        frames.append((image.convert("RGBA"), image.info.get("duration")))
    return frames


ONE_VARIANT = (Variant("v", 60),)


def make(data: bytes, *encodings: Encoding, variants=ONE_VARIANT, **options):
    return make_variants(data, ImagingOptions(variants=variants, encodings=encodings, **options))


# ---------------------------------------------------------------------------
# GIF
# ---------------------------------------------------------------------------


def test_a_still_gif_has_the_variants_size_and_its_colours():
    source = Image.new("RGB", (120, 80), RED)
    source.paste(BLUE, (60, 0, 120, 80))
    (variant,) = make(encode(source, "PNG"), Encoding(GIF, 100)).variants
    image = decode(variant.primary.data)
    assert (variant.primary.content_type, variant.primary.extension) == ("image/gif", "gif")
    assert (image.format, image.mode, image.size, getattr(image, "n_frames", 1)) == ("GIF", "P", (60, 40), 1)
    assert "loop" not in image.info  # played once: no loop block, as sharp writes a still
    assert close(rgb_at(image, (10, 20)), RED, 8) and close(rgb_at(image, (50, 20)), BLUE, 8)


def test_gif_keeps_transparency_as_a_transparent_index():
    (variant,) = make(encode(half_transparent("RGBA", (120, 60)), "PNG"), Encoding(GIF, 100)).variants
    image = decode(variant.primary.data)
    assert image.mode == "P" and isinstance(image.info.get("transparency"), int)
    rgba = image.convert("RGBA")
    assert rgba.getpixel((5, 15))[3] == 0
    right = rgba.getpixel((55, 15))
    assert right[3] == 255 and close(right[:3], RED, 8)


def test_gif_ignores_the_quality():
    data = encode(noise((96, 64), seed=5), "PNG")
    low, high = (make(data, Encoding(GIF, quality)).variants[0].primary.data for quality in (10, 95))
    assert low == high


def test_an_animated_gif_keeps_its_frames_their_durations_and_its_loop():
    colours, durations = (RED, GREEN, BLUE), (100, 250, 40)
    result = make(
        animated_gif(colours, durations, loop=0),
        Encoding(GIF, 100),
        variants=(Variant("small", 45), Variant("full", 400)),
        keep_animation=True,
    )
    for variant in result.variants:
        image = decode(variant.primary.data)
        assert image.info.get("loop") == 0
        frames = frames_of(image)
        assert [duration for _, duration in frames] == list(durations)
        for (frame, _), colour in zip(frames, colours, strict=True):
            assert frame.size == (variant.width, variant.height) == ((45, 30) if variant.name == "small" else (90, 60))
            assert close(frame.getpixel((frame.width // 2, frame.height // 2))[:3], colour, 8)


def test_an_animated_gif_keeps_each_frames_own_transparency():
    # Each frame is shown as it is, not drawn over the last: where a frame is transparent, nothing shows through.
    result = make(
        animated_gif((RED, GREEN, BLUE), (100, 100, 100), transparent_halves=True),
        Encoding(GIF, 100),
        keep_animation=True,
    )
    frames = frames_of(decode(result.variants[0].primary.data))
    assert len(frames) == 3
    for index, (frame, _) in enumerate(frames):
        clear, opaque = ((10, 20), (50, 20)) if index % 2 == 0 else ((50, 20), (10, 20))
        assert frame.getpixel(clear)[3] == 0, index
        assert frame.getpixel(opaque)[3] == 255 and close(frame.getpixel(opaque)[:3], (RED, GREEN, BLUE)[index], 8)


# A GIF stores the repeats after the first play in an optional NETSCAPE block (0: for ever; none: it plays once);
# WebP stores the number of plays.
@pytest.mark.parametrize(
    ("gif_loop", "webp_loop"), [(0, 0), (2, 3), (None, 1)], ids=["for-ever", "three-plays", "once"]
)
def test_the_number_of_plays_is_kept_in_gif_and_webp(gif_loop, webp_loop):
    data = animated_gif((RED, GREEN, BLUE), (100, 100, 100), loop=gif_loop)
    result = make(data, Encoding(GIF, 100), Encoding(OutputFormat.WEBP, 80), keep_animation=True)
    gif, webp = (decode(image.data) for image in result.variants[0].encodings)
    assert gif.info.get("loop") == gif_loop
    assert webp.info.get("loop") == webp_loop
    assert gif.n_frames == webp.n_frames == 3


# ---------------------------------------------------------------------------
# TIFF
# ---------------------------------------------------------------------------


def test_tiff_is_jpeg_compressed_at_the_encodings_quality_in_sharps_layout():
    data = encode(noise((200, 300), seed=9), "PNG")
    low, high = (make(data, Encoding(TIFF, quality), variants=(Variant("v", 300),)) for quality in (20, 95))
    # libvips' layout, as sharp writes it: YCbCr with chroma at half resolution both ways (the tag's default), and
    # from quality 90 up RGB, whose colour keeps full resolution (as libvips' JPEG saver stops subsampling there);
    # strips of 256 rows.
    for result, photometric in ((low, 6), (high, 2)):
        (variant,) = result.variants
        image = decode(variant.primary.data)
        assert (variant.primary.content_type, variant.primary.extension) == ("image/tiff", "tiff")
        assert (image.format, image.mode, image.size) == ("TIFF", "RGB", (200, 300))
        assert image.info["compression"] == "jpeg"
        assert image.tag_v2[262] == photometric and image.tag_v2.get(530, (2, 2)) == (2, 2)
        assert image.tag_v2[278] == 256
    assert high.variants[0].primary.bytes > 2 * low.variants[0].primary.bytes


def test_tiff_keeps_the_colours():
    source = Image.new("RGB", (120, 80), GREEN)
    source.paste(RED, (60, 0, 120, 80))
    image = decode(make(encode(source, "PNG"), Encoding(TIFF, 80)).variants[0].primary.data)
    assert close(rgb_at(image, (10, 20)), GREEN, 12) and close(rgb_at(image, (50, 20)), RED, 12)


@pytest.mark.parametrize("background", [(255, 255, 255), (0, 128, 255)])
def test_tiff_is_flattened_onto_the_background(background):
    result = make(encode(half_transparent("RGBA", (120, 60)), "PNG"), Encoding(TIFF, 90), background=background)
    image = decode(result.variants[0].primary.data)
    assert image.mode == "RGB" and 338 not in image.tag_v2  # no extra (alpha) samples
    assert close(rgb_at(image, (5, 15)), background, 12) and close(rgb_at(image, (55, 15)), RED, 24)


def test_tiff_from_a_tiff_carries_none_of_its_tags():
    # The variant is the source's own size, so the picture handed to the encoder is the decoded upload itself.
    tags = {270: "COMMENTSECRET", 315: "EXIFSECRETARTIST", 305: "SOFTWARESECRET", 700: XMP}
    data = encode(noise((48, 32), seed=2), "TIFF", tiffinfo=tags)
    assert all(secret in data for secret in (b"COMMENTSECRET", b"EXIFSECRETARTIST", b"XMPSECRETPACKET"))
    output = make(data, Encoding(TIFF, 80), variants=(Variant("v", 4096),)).variants[0].primary.data
    for secret in (b"COMMENTSECRET", b"EXIFSECRETARTIST", b"SOFTWARESECRET", b"XMPSECRETPACKET"):
        assert secret not in output
    assert set(decode(output).tag_v2) <= TIFF_LAYOUT_TAGS


# ---------------------------------------------------------------------------
# Stills of an animation that is kept
# ---------------------------------------------------------------------------


def test_still_encodings_take_the_first_frame_of_a_kept_animation():
    # As the extension: animation kept in its WebP and GIF outputs, the first frame in its PNG and AVIF ones.
    encodings = (
        Encoding(OutputFormat.WEBP, 80),
        Encoding(GIF, 100),
        Encoding(OutputFormat.PNG, 100, still=True),
        Encoding(OutputFormat.AVIF, 50, still=True),
        Encoding(TIFF, 80),
    )
    result = make(animated_gif((RED, GREEN, BLUE), (100, 100, 100)), *encodings, keep_animation=True)
    assert result.source.frames == 3
    frame_counts = {}
    for image in result.variants[0].encodings:
        frames = frames_of(decode(image.data))
        frame_counts[image.format] = len(frames)
        assert close(frames[0][0].getpixel((30, 20))[:3], RED, 12), image.format
    assert frame_counts == {"webp": 3, "gif": 3, "png": 1, "avif": 1, "tiff": 1}


def test_only_still_encodings_make_a_still_of_an_animation():
    result = make(
        animated_gif((RED, GREEN), (100, 100)), Encoding(OutputFormat.PNG, 100, still=True), keep_animation=True
    )
    image = decode(result.variants[0].primary.data)
    assert getattr(image, "n_frames", 1) == 1 and close(rgb_at(image, (30, 20)), RED, 8)


@pytest.mark.parametrize(
    ("encoding", "animates"),
    [
        (Encoding(OutputFormat.WEBP, 80), True),
        (Encoding(OutputFormat.WEBP, 80, still=True), False),
        (Encoding(GIF, 100), True),
        (Encoding(GIF, 100, still=True), False),
        (Encoding(OutputFormat.PNG, 100), True),
        (Encoding(OutputFormat.JPEG, 80), False),
        (Encoding(TIFF, 80), False),
    ],
)
def test_an_encoding_animates_when_its_format_can_and_it_is_not_still(encoding, animates):
    assert encoding.animates is animates
