"""Variants beyond one square box and one format: cover crops, boxes, several encodings, backgrounds, ThumbHash and
content steps (which see the picture upright and in sRGB, before any resize)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import thumbhash
from PIL import Image, ImageOps

from image_pipeline.imaging import make_variants
from image_pipeline.imaging import pipeline as core_pipeline
from image_pipeline.imaging.geometry import WHOLE
from image_pipeline.options import Encoding, Fit, Gravity, ImagingOptions, OutputFormat, Variant
from tests.imaging_fixtures import (
    BLUE,
    GREEN,
    QUADRANTS,
    RED,
    close,
    decode,
    encode,
    half_transparent,
    noise,
    oriented_bytes,
    pattern_image,
    quadrant_colours,
    rgb_at,
    solid,
    swapped_rgb_profile,
)

PNG = (Encoding(OutputFormat.PNG, 100),)
ALL_ENCODINGS = (
    Encoding(OutputFormat.AVIF, 60),
    Encoding(OutputFormat.WEBP, 80),
    Encoding(OutputFormat.JPEG, 80),
    Encoding(OutputFormat.PNG, 100),
)
PIL_NAMES = {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG", "png": "PNG"}


def bands(size=(300, 100), colours=(RED, GREEN, BLUE)) -> Image.Image:
    """Vertical bands of equal width, one per colour, left to right (horizontal bands when taller than wide)."""
    width, height = size
    image = Image.new("RGB", size)
    count = len(colours)
    for index, colour in enumerate(colours):
        if width >= height:
            image.paste(colour, (index * width // count, 0, (index + 1) * width // count, height))
        else:
            image.paste(colour, (0, index * height // count, width, (index + 1) * height // count))
    return image


def make(data: bytes, *variants: Variant, encodings=PNG, **options):
    """make_variants with these variants and encodings."""
    return make_variants(data, ImagingOptions(variants=variants, encodings=encodings, **options))


# ---------------------------------------------------------------------------
# Cover and boxes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((300, 100), (50, 50), (50, 50)),
        ((100, 300), (50, 50), (50, 50)),
        ((300, 100), (60, 30), (60, 30)),
        ((300, 100), (400, 400), (100, 100)),  # smaller than the box: the box's aspect at source resolution
        ((300, 100), (120, 400), (30, 100)),
    ],
)
def test_cover_fills_the_box_with_the_centre_and_never_upscales(size, box, expected):
    result = make(encode(bands(size), "PNG"), Variant("c", *box, fit=Fit.COVER))
    (variant,) = result.variants
    image = decode(variant.primary.data)
    assert (variant.width, variant.height) == image.size == expected
    assert close(rgb_at(image, (image.width // 2, image.height // 2)), GREEN, 10)
    if box[0] == box[1]:
        # A square crop of three equal bands keeps only the middle one.
        assert all(close(rgb_at(image, corner), GREEN, 40) for corner in [(1, 1), (image.width - 2, image.height - 2)])


def test_cover_at_source_resolution_is_an_exact_crop():
    source = noise((201, 100), seed=4)
    result = make(encode(source, "PNG"), Variant("c", 256, fit=Fit.COVER))
    output = decode(result.variants[0].primary.data).convert("RGB")
    assert output.tobytes() == source.crop((50, 0, 150, 100)).tobytes()


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [((400, 300), (120, 63), (84, 63)), ((300, 400), (120, 63), (47, 63)), ((400, 300), (1200, 630), (400, 300))],
)
def test_inside_a_non_square_box_fits_width_and_height(size, box, expected):
    result = make(encode(noise(size), "PNG"), Variant("i", *box))
    assert decode(result.variants[0].primary.data).size == expected


def test_mixed_cover_and_inside_variants_match_a_direct_resize():
    # Each output is compared with one Lanczos resize of the source's region: a cover variant rendered from a
    # rendition that no longer covered its box at its size would be upscaled, and blurred far past this bound.
    source = pattern_image((800, 600))
    variants = (
        Variant("large", 400),
        Variant("og", 300, 150, Fit.COVER),
        Variant("avatar", 128, fit=Fit.COVER),
        Variant("thumb", 100),
        Variant("tiny", 32, fit=Fit.COVER),
    )
    regions = {
        "large": (0, 0, 800, 600),
        "og": (0, 100, 800, 500),
        "avatar": (100, 0, 700, 600),
        "thumb": (0, 0, 800, 600),
        "tiny": (100, 0, 700, 600),
    }
    sizes = {"large": (400, 300), "og": (300, 150), "avatar": (128, 128), "thumb": (100, 75), "tiny": (32, 32)}
    result = make(encode(source, "PNG"), *variants)
    assert [variant.name for variant in result.variants] == [variant.name for variant in variants]
    for variant in result.variants:
        output = np.asarray(decode(variant.primary.data).convert("RGB"), dtype=float)
        reference = source.resize(sizes[variant.name], Image.Resampling.LANCZOS, box=regions[variant.name])
        assert output.shape == (sizes[variant.name][1], sizes[variant.name][0], 3)
        assert np.abs(output - np.asarray(reference, dtype=float)).mean() < 4.0, variant.name


# Of a picture in two halves, red then blue (top to bottom when tall, left to right when wide), the colours a square
# crop shows at its start and its end along the long axis: a tall picture's crop moves only up and down, a wide one's
# only sideways.
TOP_KEPT, BOTTOM_KEPT = (
    {Gravity.NORTH, Gravity.NORTHEAST, Gravity.NORTHWEST},
    {Gravity.SOUTH, Gravity.SOUTHEAST, Gravity.SOUTHWEST},
)
LEFT_KEPT, RIGHT_KEPT = (
    {Gravity.WEST, Gravity.NORTHWEST, Gravity.SOUTHWEST},
    {Gravity.EAST, Gravity.NORTHEAST, Gravity.SOUTHEAST},
)


def halves(size) -> Image.Image:
    return bands(size, (RED, BLUE))


def expected_ends(gravity: Gravity, tall: bool) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    start_kept, end_kept = (TOP_KEPT, BOTTOM_KEPT) if tall else (LEFT_KEPT, RIGHT_KEPT)
    if gravity in start_kept:
        return RED, RED
    if gravity in end_kept:
        return BLUE, BLUE
    return RED, BLUE


# A JPEG is decoded at 1/4 scale (the 1/8 one would be a row short of what the crop needs), where the crop's edges fall
# between pixels: 800 of 1630 rows are 200.25 of 408.
DECODED = {
    ("PNG", True): (800, 1630),
    ("PNG", False): (1630, 800),
    ("JPEG", True): (200, 408),
    ("JPEG", False): (408, 200),
}


@pytest.mark.parametrize("gravity", list(Gravity), ids=lambda gravity: gravity.value)
@pytest.mark.parametrize("tall", [True, False], ids=["tall", "wide"])
@pytest.mark.parametrize("source_format", ["PNG", "JPEG"])
def test_a_cover_crop_keeps_the_part_its_gravity_names(gravity, tall, source_format, monkeypatch):
    decoded = []
    real_load = core_pipeline.load_first_frame

    def recording(opened, draft):
        image = real_load(opened, draft)
        decoded.append(image.size)
        return image

    monkeypatch.setattr(core_pipeline, "load_first_frame", recording)
    size = DECODED["PNG", tall]
    data = encode(halves(size), source_format, **({"quality": 95} if source_format == "JPEG" else {}))
    result = make(data, Variant("crop", 100, fit=Fit.COVER, gravity=gravity))
    assert decoded == [DECODED[source_format, tall]]
    image = decode(result.variants[0].primary.data)
    assert image.size == (100, 100)
    start, end = ((50, 4), (50, 95)) if tall else ((4, 50), (95, 50))
    expected_start, expected_end = expected_ends(gravity, tall)
    assert close(rgb_at(image, start), expected_start) and close(rgb_at(image, end), expected_end)


@pytest.mark.parametrize("gravity", [Gravity.NORTH, Gravity.SOUTHEAST, Gravity.WEST], ids=lambda gravity: gravity.value)
def test_cover_crops_at_a_gravity_are_cut_from_larger_renditions_at_their_own_place(gravity, monkeypatch):
    # The cascade renders a crop from the smallest larger rendition that holds it: its region must be found inside
    # that rendition's, wherever the gravity put both. Each output is compared with one Lanczos resize of its region.
    rendered_from = []
    real_render = core_pipeline.render

    def recording(source, source_region, target):
        rendered_from.append(source_region)
        return real_render(source, source_region, target)

    monkeypatch.setattr(core_pipeline, "render", recording)
    source = pattern_image((800, 600))
    variants = (
        Variant("large", 400),
        Variant("og", 300, 150, Fit.COVER, gravity),
        Variant("avatar", 200, fit=Fit.COVER, gravity=gravity),
        Variant("tiny", 48, fit=Fit.COVER, gravity=gravity),
        Variant("centred", 40, fit=Fit.COVER),
    )
    result = make(encode(source, "PNG"), *variants)
    # Renditions other than the whole picture served as sources: the crops were cut from larger renditions.
    assert any(region != WHOLE for region in rendered_from)
    left, top = {Gravity.NORTH: (100, 0), Gravity.SOUTHEAST: (200, 0), Gravity.WEST: (0, 0)}[gravity]
    og_top = {Gravity.NORTH: 0, Gravity.SOUTHEAST: 200, Gravity.WEST: 100}[gravity]
    regions = {
        "large": (0, 0, 800, 600),
        "og": (0, og_top, 800, og_top + 400),
        "avatar": (left, top, left + 600, top + 600),
        "tiny": (left, top, left + 600, top + 600),
        "centred": (100, 0, 700, 600),
    }
    for variant in result.variants:
        size = (variant.width, variant.height)
        output = np.asarray(decode(variant.primary.data).convert("RGB"), dtype=float)
        reference = source.resize(size, Image.Resampling.LANCZOS, box=regions[variant.name])
        assert np.abs(output - np.asarray(reference, dtype=float)).mean() < 4.0, variant.name


# ---------------------------------------------------------------------------
# Several encodings
# ---------------------------------------------------------------------------


def test_every_variant_comes_in_every_encoding_in_order():
    result = make(encode(noise((300, 200)), "PNG"), Variant("small", 64), Variant("big", 256), encodings=ALL_ENCODINGS)
    for variant in result.variants:
        assert [image.format for image in variant.encodings] == ["avif", "webp", "jpeg", "png"]
        assert variant.primary is variant.encodings[0]
        for image in variant.encodings:
            decoded = decode(image.data)
            assert decoded.format == PIL_NAMES[image.format]
            assert decoded.size == (variant.width, variant.height)
            assert image.content_type == f"image/{image.format}"
            assert image.extension == ("jpg" if image.format == "jpeg" else image.format)


def test_each_size_is_encoded_once_per_format(monkeypatch):
    calls = []
    real_encode = core_pipeline.encode

    def counting(image, encoding, background):
        calls.append((image.size, encoding.format.value))
        return real_encode(image, encoding, background)

    monkeypatch.setattr(core_pipeline, "encode", counting)
    encodings = (Encoding(OutputFormat.WEBP, 80), Encoding(OutputFormat.JPEG, 80))
    # A 100x80 source: "thumb" and "large" are both 100x80; "square" is a different rendition of the same size.
    variants = (Variant("thumb", 256), Variant("large", 2048), Variant("square", 80, fit=Fit.COVER))
    result = make(encode(noise((100, 80)), "PNG"), *variants, encodings=encodings)
    assert sorted(calls) == sorted([((100, 80), "webp"), ((100, 80), "jpeg"), ((80, 80), "webp"), ((80, 80), "jpeg")])
    thumb, large, _ = result.variants
    assert thumb.encodings == large.encodings


@pytest.mark.parametrize("background", [(255, 255, 255), (0, 128, 255), (10, 10, 10)])
def test_jpeg_is_flattened_onto_the_background_and_other_formats_keep_alpha(background):
    encodings = (Encoding(OutputFormat.JPEG, 95), Encoding(OutputFormat.WEBP, 95))
    result = make(encode(half_transparent("RGBA"), "PNG"), Variant("v", 64), encodings=encodings, background=background)
    jpeg, webp = (decode(image.data) for image in result.variants[0].encodings)
    width, height = jpeg.size
    assert jpeg.mode == "RGB"
    assert close(jpeg.getpixel((width // 8, height // 2)), background, 12)
    assert close(jpeg.getpixel((7 * width // 8, height // 2)), RED, 24)
    assert webp.mode == "RGBA" and webp.getpixel((width // 8, height // 2))[3] <= 8


# ---------------------------------------------------------------------------
# Placeholder
# ---------------------------------------------------------------------------


def _thumbhash_bytes(text: str) -> bytes:
    assert len(text) % 4 == 0  # standard base64 with padding
    return base64.b64decode(text, validate=True)


# ThumbHash stores the aspect ratio coarsely (as its count of cosine components), more coarsely with alpha.
@pytest.mark.parametrize(
    ("size", "aspects"), [((200, 100), (1.5, 2.1)), ((100, 200), (0.45, 0.67)), ((120, 120), (1, 1))]
)
def test_thumbhash_keeps_alpha_and_aspect(size, aspects):
    placeholder = make(encode(half_transparent("RGBA", size), "PNG"), Variant("v", 256)).placeholder
    hashed = _thumbhash_bytes(placeholder.thumbhash)
    low, high = aspects
    assert low - 0.01 <= thumbhash.thumb_hash_to_approximate_aspect_ratio(hashed) <= high + 0.01
    width, height, rgba = thumbhash.thumb_hash_to_rgba(hashed)
    painted = Image.frombytes("RGBA", (width, height), rgba)
    assert painted.getpixel((0, height // 2))[3] < 64
    assert painted.getpixel((width - 1, height // 2))[3] > 192


def test_blurhash_sees_the_image_on_the_background_and_the_dominant_colour_is_unchanged():
    import blurhash

    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (24, 24, 40, 40))
    data = encode(image, "PNG")
    placeholders = {
        background: make(data, Variant("v", 64), background=background).placeholder
        for background in [(255, 255, 255), (0, 0, 255)]
    }
    for background, placeholder in placeholders.items():
        painted = blurhash.decode(placeholder.blurhash, 8, 8).convert("RGB")
        assert close(painted.getpixel((0, 0)), background, 60)
    # The dominant colour is computed as it always was, from the colour channels alone: whatever the background.
    assert len({placeholder.dominant_color for placeholder in placeholders.values()}) == 1


def test_the_placeholder_describes_the_largest_variants_framing():
    # Only cover variants: the placeholder is square and shows the middle band, as the app displays the image.
    placeholder = make(
        encode(bands((300, 100)), "PNG"), Variant("small", 32, fit=Fit.COVER), Variant("big", 96, fit=Fit.COVER)
    ).placeholder
    hashed = _thumbhash_bytes(placeholder.thumbhash)
    assert thumbhash.thumb_hash_to_approximate_aspect_ratio(hashed) == pytest.approx(1.0, rel=0.1)
    assert placeholder.dominant_color == "#00ff00"


# ---------------------------------------------------------------------------
# Content steps
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_content_steps_see_the_upright_picture_and_their_result_is_resized(orientation):
    seen = []

    def invert(picture: Image.Image) -> Image.Image:
        seen.append((picture.mode, picture.size, quadrant_colours(picture)))
        return ImageOps.invert(picture)

    options = ImagingOptions(variants=(Variant("full", 4096), Variant("half", 30)), encodings=PNG)
    result = make_variants(oriented_bytes(orientation, "JPEG"), options, content_steps=(invert,))
    ((mode, size, colours),) = seen
    assert (mode, size) == ("RGB", (60, 40))
    assert all(close(colours[name], expected, 60) for name, expected in QUADRANTS.items()), colours
    for variant in result.variants:
        output = quadrant_colours(decode(variant.primary.data))
        for name, (red, green, blue) in QUADRANTS.items():
            assert close(output[name], (255 - red, 255 - green, 255 - blue), 60), (variant.name, output)


def test_content_steps_see_srgb_colours():
    seen = []
    data = encode(solid(RED), "PNG", icc_profile=swapped_rgb_profile())  # stored red displays blue
    options = ImagingOptions(variants=(Variant("v", 64),), encodings=PNG)
    make_variants(data, options, content_steps=(lambda picture: seen.append(rgb_at(picture, (4, 4))) or picture,))
    assert close(seen[0], BLUE, 40), seen


@pytest.mark.parametrize("encoding", ALL_ENCODINGS, ids=lambda encoding: encoding.format.value)
@pytest.mark.parametrize("source_format", ["PNG", "JPEG"])
def test_a_grey_image_is_resized_as_grey_and_written_as_colour(encoding, source_format):
    data = encode(Image.new("L", (300, 200), 90), source_format)
    result = make(data, Variant("v", 64), encodings=(encoding,))
    image = decode(result.variants[0].primary.data)
    assert (image.mode, image.size) == ("RGB", (64, 43))
    assert close(rgb_at(image, (32, 21)), (90, 90, 90), 6)
