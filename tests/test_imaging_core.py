"""The imaging core on valid inputs: orientation, metadata, colour, alpha, animation, variants, placeholder."""

from __future__ import annotations

import base64
import re

import blurhash
import numpy as np
import pytest
import thumbhash
from PIL import Image

from image_pipeline.options import OutputFormat, Variant
from tests.imaging_fixtures import (
    BLUE,
    CANON_SIZE,
    GREEN,
    QUADRANTS,
    RED,
    animated_bytes,
    canonical_image,
    centre,
    close,
    cmyk_profile_target,
    decode,
    encode,
    exif_bytes,
    half_transparent,
    is_srgb_or_untagged,
    noise,
    oriented_bytes,
    palette_with_transparency,
    pattern_image,
    png_16bit_grey,
    png_16bit_rgb,
    quadrant_colours,
    rgb_at,
    run,
    solid,
    srgb_profile,
    swapped_rgb_profile,
    weird_cmyk_profile,
)

ALL_FORMATS = list(OutputFormat)
PIL_NAME = {
    OutputFormat.WEBP: "WEBP",
    OutputFormat.AVIF: "AVIF",
    OutputFormat.JPEG: "JPEG",
    OutputFormat.PNG: "PNG",
    OutputFormat.GIF: "GIF",
    OutputFormat.TIFF: "TIFF",
}
ALPHA_FORMATS = [OutputFormat.WEBP, OutputFormat.PNG, OutputFormat.AVIF]
# A variant larger than every fixture (no resize) and one that shrinks the 60x40 canonical picture to 30x20.
FULL_AND_HALF = (Variant("full", 4096), Variant("half", 30))


def assert_canonical(image: Image.Image) -> None:
    """Fail unless a displayed image shows the canonical quadrant colours."""
    colours = quadrant_colours(image)
    for name, expected in QUADRANTS.items():
        assert close(colours[name], expected, 60), f"{name} is {colours[name]}, expected about {expected}: {colours}"


# ---------------------------------------------------------------------------
# Orientation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_once(orientation):
    result = run(oriented_bytes(orientation, "JPEG"), variants=FULL_AND_HALF)
    assert (result.source.width, result.source.height) == CANON_SIZE
    full, half = result.variants
    assert (full.width, full.height) == CANON_SIZE
    assert (half.width, half.height) == (30, 20)
    for variant in result.variants:
        image = decode(variant.primary.data)
        assert image.size == (variant.width, variant.height)
        assert_canonical(image)


@pytest.mark.parametrize("fmt", ["TIFF", "AVIF", "HEIF", "WEBP", "PNG"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_orientation_in_other_formats_is_applied_exactly_once(fmt, orientation):
    # Pillow's TIFF loader and libheif already apply the rotation themselves: the core must not rotate twice.
    result = run(oriented_bytes(orientation, fmt), variants=FULL_AND_HALF)
    assert (result.source.width, result.source.height) == CANON_SIZE
    for variant in result.variants:
        assert_canonical(decode(variant.primary.data))
    assert (result.variants[0].width, result.variants[0].height) == CANON_SIZE


@pytest.mark.parametrize("value", [0, 9, 255, 65535])
def test_invalid_orientation_values_are_ignored(value):
    data = encode(canonical_image(), "JPEG", quality=95, exif=exif_bytes(value))
    result = run(data, variants=FULL_AND_HALF)
    assert (result.source.width, result.source.height) == CANON_SIZE
    assert_canonical(decode(result.variants[0].primary.data))


@pytest.mark.parametrize("output_format", ALL_FORMATS)
@pytest.mark.parametrize("orientation", [6, 8])
def test_outputs_carry_no_orientation_tag(output_format, orientation):
    result = run(oriented_bytes(orientation), output_format=output_format, variants=FULL_AND_HALF)
    for variant in result.variants:
        image = decode(variant.primary.data)
        # Pillow's TIFF reader reports the orientation it applied as 1; no other value may reach a viewer.
        assert image.getexif().get(0x0112, 1) == 1
        # A viewer that honours the tag would otherwise rotate again; the pixels alone must be upright.
        assert image.size == (variant.width, variant.height) and variant.width > variant.height


# ---------------------------------------------------------------------------
# Metadata is stripped (privacy)
# ---------------------------------------------------------------------------

SECRETS = (b"GPSSECRETDATUM", b"EXIFSECRETARTIST", b"XMPSECRETPACKET", b"COMMENTSECRET", b"PNGTEXTSECRET")
XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b"XMPSECRETPACKET</x:xmpmeta><?xpacket end="
    b'"w"?>'
)


def _metadata_laden(fmt: str) -> bytes:
    """A photo in `fmt` carrying EXIF with GPS, XMP, a comment/text chunk and an ICC profile."""
    image = noise((48, 32), seed=3)
    exif = exif_bytes(orientation=1, gps_secret="GPSSECRETDATUM", description="EXIFSECRETARTIST")
    if fmt == "JPEG":
        return encode(image, "JPEG", exif=exif, xmp=XMP, comment=b"COMMENTSECRET", icc_profile=srgb_profile())
    if fmt == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "PNGTEXTSECRET")
        info.add_text("Description", "COMMENTSECRET", zip=True)
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        return encode(image, "PNG", pnginfo=info, exif=exif, icc_profile=srgb_profile())
    if fmt == "WEBP":
        return encode(image, "WEBP", exif=exif, xmp=XMP, icc_profile=srgb_profile())
    raise AssertionError(fmt)


@pytest.mark.parametrize("output_format", ALL_FORMATS)
@pytest.mark.parametrize("input_format", ["JPEG", "PNG", "WEBP"])
def test_no_uploader_metadata_survives(input_format, output_format):
    data = _metadata_laden(input_format)
    result = run(data, output_format=output_format, variants=FULL_AND_HALF)
    for variant in result.variants:
        for secret in SECRETS:
            assert secret not in variant.primary.data, f"{secret!r} leaked into {variant.name}"
        image = decode(variant.primary.data)
        assert _metadata_tags(image) == set()
        assert not any(key in image.info for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment")), sorted(
            image.info
        )
        assert is_srgb_or_untagged(image)


# What every TIFF holds to describe its pixels: size, samples, compression, colour, strips, JPEG tables, resolution.
TIFF_LAYOUT_TAGS = {256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 282, 283, 284, 296, 339, 347, 530, 532}


def _metadata_tags(image: Image.Image) -> set[int]:
    """The EXIF tags of a decoded output; for a TIFF, whose tags are its EXIF, those beyond its layout."""
    tags = set(image.getexif())
    return tags - TIFF_LAYOUT_TAGS if image.format == "TIFF" else tags


def test_metadata_fixture_really_carries_the_secrets():
    data = _metadata_laden("JPEG")
    image = decode(data)
    assert image.getexif().get_ifd(0x8825) and "xmp" in image.info and image.info.get("comment") == b"COMMENTSECRET"
    for secret in (b"GPSSECRETDATUM", b"EXIFSECRETARTIST", b"XMPSECRETPACKET", b"COMMENTSECRET"):
        assert secret in data


# ---------------------------------------------------------------------------
# Colour
# ---------------------------------------------------------------------------


def _single_colour(result) -> tuple[int, int, int]:
    """The colour at the centre of the first variant."""
    image = decode(result.variants[0].primary.data)
    assert is_srgb_or_untagged(image)
    return rgb_at(image, (image.width // 2, image.height // 2))


@pytest.mark.parametrize(
    ("cmyk", "check"),
    [
        ((255, 0, 0, 0), lambda r, g, b: r < 80 and g > 140 and b > 180),  # cyan
        ((0, 255, 0, 0), lambda r, g, b: r > 180 and g < 80 and b > 100),  # magenta
        ((0, 0, 255, 0), lambda r, g, b: r > 200 and g > 180 and b < 80),  # yellow
        ((0, 0, 0, 255), lambda r, g, b: max(r, g, b) < 70),  # black
        ((0, 0, 0, 0), lambda r, g, b: min(r, g, b) > 215),  # paper white
    ],
)
def test_cmyk_jpeg_without_profile_becomes_rgb(cmyk, check):
    data = encode(Image.new("CMYK", (32, 24), cmyk), "JPEG", quality=95)
    result = run(data)
    assert result.source.format == "JPEG"
    image = decode(result.variants[0].primary.data)
    assert image.mode == "RGB"
    colour = _single_colour(result)
    assert check(*colour), colour


@pytest.mark.parametrize("cmyk", [(255, 0, 0, 0), (0, 0, 255, 0)])
def test_cmyk_jpeg_embedded_profile_is_honoured(cmyk):
    # The test profile deliberately maps cyan ink to yellow and yellow ink to cyan, so naive inversion is caught.
    data = encode(Image.new("CMYK", (32, 24), cmyk), "JPEG", quality=95, icc_profile=weird_cmyk_profile())
    expected = cmyk_profile_target(*cmyk)
    colour = _single_colour(run(data))
    assert close(colour, expected, 40), f"got {colour}, profile says {expected}"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_rgb_profile_is_converted_to_srgb(fmt):
    # Stored pure red, tagged with a profile whose "red" primary is sRGB blue: it displays (and must come out) blue.
    params = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    data = encode(solid(RED), fmt, icc_profile=swapped_rgb_profile(), **params)
    colour = _single_colour(run(data))
    assert close(colour, BLUE, 40), colour


@pytest.mark.parametrize(
    "icc",
    [b"", b"not an icc profile at all" * 8, "srgb_truncated", bytes(128), b"\xff" * 600],
    ids=["empty", "text", "srgb_truncated", "zero_header", "ff_bytes"],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_broken_icc_profile_is_ignored_not_fatal(fmt, icc):
    if icc == "srgb_truncated":
        icc = srgb_profile()[:200]
    data = encode(solid((200, 30, 40)), fmt, icc_profile=icc, **({"quality": 95} if fmt == "JPEG" else {}))
    colour = _single_colour(run(data))
    assert close(colour, (200, 30, 40), 30), colour


def test_srgb_profile_keeps_colours():
    data = encode(solid((200, 120, 40)), "PNG", icc_profile=srgb_profile())
    assert close(_single_colour(run(data)), (200, 120, 40), 12)


@pytest.mark.parametrize(("value", "expected"), [(65535, 255), (32768, 128), (16384, 64), (0, 0)])
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_greyscale_is_scaled_not_clipped(fmt, value, expected):
    data = png_16bit_grey(value) if fmt == "PNG" else encode(Image.new("I;16", (16, 16), value), "TIFF")
    assert decode(data).mode.startswith("I")
    colour = _single_colour(run(data))
    assert close(colour, (expected,) * 3, 10), colour


def test_16_bit_rgb_png_is_scaled():
    array = np.zeros((12, 16, 3), np.uint16)
    array[..., 0], array[..., 1], array[..., 2] = 65535, 32768, 4096
    colour = _single_colour(run(png_16bit_rgb(array)))
    assert close(colour, (255, 128, 16), 10), colour


def _has_alpha(image: Image.Image) -> bool:
    """Whether a decoded output carries transparency."""
    return image.has_transparency_data


@pytest.mark.parametrize("output_format", ALPHA_FORMATS)
@pytest.mark.parametrize(
    ("source", "opaque_colour"),
    [
        ("rgba_png", RED),
        ("la_png", (100, 100, 100)),
        ("palette_png", RED),
        ("rgba_webp", RED),
        ("rgba_tiff", RED),
    ],
)
def test_alpha_is_kept(source, opaque_colour, output_format):
    data = {
        "rgba_png": lambda: encode(half_transparent("RGBA"), "PNG"),
        "la_png": lambda: encode(half_transparent("LA"), "PNG"),
        "palette_png": palette_with_transparency,
        "rgba_webp": lambda: encode(half_transparent("RGBA"), "WEBP", lossless=True),
        "rgba_tiff": lambda: encode(half_transparent("RGBA"), "TIFF"),
    }[source]()
    result = run(data, output_format=output_format, variants=FULL_AND_HALF)
    for variant in result.variants:
        image = decode(variant.primary.data)
        assert _has_alpha(image), image.mode
        if output_format is not OutputFormat.PNG:
            assert image.mode == "RGBA"
        rgba = image.convert("RGBA")
        width, height = rgba.size
        left = rgba.getpixel((width // 8, height // 2))
        right = rgba.getpixel((7 * width // 8, height // 2))
        assert left[3] <= 8, left
        assert right[3] >= 247 and close(right[:3], opaque_colour, 30), right


@pytest.mark.parametrize("output_format", ALL_FORMATS)
def test_opaque_image_has_no_alpha(output_format):
    result = run(encode(solid(GREEN), "PNG"), output_format=output_format)
    for variant in result.variants:
        image = decode(variant.primary.data)
        if output_format is OutputFormat.GIF:
            # libvips' GIF saver (sharp's) reserves a transparent entry in every palette: here no pixel uses it.
            assert image.mode == "P" and image.convert("RGBA").getextrema()[3] == (255, 255)
        else:
            assert image.mode == "RGB" and not _has_alpha(image)


def test_transparent_image_to_jpeg_still_succeeds_as_rgb():
    result = run(encode(half_transparent("RGBA"), "PNG"), output_format=OutputFormat.JPEG)
    assert all(decode(variant.primary.data).mode == "RGB" for variant in result.variants)


# ---------------------------------------------------------------------------
# Animation
# ---------------------------------------------------------------------------

ANIMATED_INPUTS = [("GIF", "GIF"), ("WEBP", "WEBP"), ("PNG", "PNG")]


def _frames(image: Image.Image) -> list[Image.Image]:
    """Every frame of a decoded output, as RGB."""
    frames = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        frames.append(image.convert("RGB"))
    return frames


@pytest.mark.parametrize(("fmt", "reported"), ANIMATED_INPUTS)
def test_animation_defaults_to_first_frame(fmt, reported):
    result = run(animated_bytes(fmt, (RED, GREEN, BLUE, GREEN)))
    assert result.source.format == reported
    assert result.source.frames == 4
    for variant in result.variants:
        image = decode(variant.primary.data)
        assert getattr(image, "n_frames", 1) == 1
        assert close(rgb_at(image, (5, 5)), RED, 30)


@pytest.mark.parametrize("output_format", [OutputFormat.WEBP, OutputFormat.PNG, OutputFormat.AVIF])
@pytest.mark.parametrize(("fmt", "reported"), ANIMATED_INPUTS)
def test_keep_animation_keeps_every_frame_resized(fmt, reported, output_format):
    colours = (RED, GREEN, BLUE)
    result = run(
        animated_bytes(fmt, colours, size=(90, 60)),
        keep_animation=True,
        output_format=output_format,
        variants=(Variant("small", 45), Variant("full", 400)),
    )
    assert result.source.frames == 3
    small, full = result.variants
    assert (small.width, small.height) == (45, 30)
    assert (full.width, full.height) == (90, 60)
    for variant in result.variants:
        image = decode(variant.primary.data)
        assert getattr(image, "n_frames", 1) == 3
        frames = _frames(image)
        for frame, colour in zip(frames, colours, strict=True):
            assert frame.size == (variant.width, variant.height)
            assert close(frame.getpixel(centre(frame)), colour, 40)


def test_kept_animation_keeps_frame_timing():
    result = run(animated_bytes("GIF", (RED, GREEN, BLUE)), keep_animation=True, output_format=OutputFormat.WEBP)
    image = decode(result.variants[0].primary.data)
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        image.load()
        durations.append(image.info.get("duration"))
    assert durations == [100, 100, 100]


def test_keep_animation_with_still_output_format_gives_first_frame():
    result = run(animated_bytes("GIF", (RED, GREEN, BLUE)), keep_animation=True, output_format=OutputFormat.JPEG)
    for variant in result.variants:
        image = decode(variant.primary.data)
        assert getattr(image, "n_frames", 1) == 1 and close(rgb_at(image, (5, 5)), RED, 30)


def test_still_image_reports_one_frame():
    assert run(encode(solid(RED), "PNG"), keep_animation=True).source.frames == 1


# ---------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------


def _sizes(result) -> dict[str, tuple[int, int]]:
    """name -> (width, height) of each variant, checking declared sizes against decoded ones."""
    sizes = {}
    for variant in result.variants:
        assert decode(variant.primary.data).size == (variant.width, variant.height), variant.name
        sizes[variant.name] = (variant.width, variant.height)
    return sizes


def _near(actual, expected) -> bool:
    """Sizes equal within one pixel per edge."""
    return all(abs(a - e) <= 1 for a, e in zip(actual, expected, strict=True))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((500, 300), {"thumb": (256, 154), "medium": (500, 300), "large": (500, 300)}),
        ((300, 500), {"thumb": (154, 256), "medium": (300, 500), "large": (300, 500)}),
        ((256, 256), {"thumb": (256, 256), "medium": (256, 256), "large": (256, 256)}),
        ((10, 7), {"thumb": (10, 7), "medium": (10, 7), "large": (10, 7)}),
        ((2400, 1200), {"thumb": (256, 128), "medium": (1024, 512), "large": (2048, 1024)}),
        ((1500, 3000), {"thumb": (128, 256), "medium": (512, 1024), "large": (1024, 2048)}),
    ],
)
def test_default_variants_fit_longest_edge_and_never_upscale(size, expected):
    result = run(encode(solid((10, 120, 200), size), "PNG"))
    assert [variant.name for variant in result.variants] == ["thumb", "medium", "large"]
    assert (result.source.width, result.source.height) == size
    sizes = _sizes(result)
    for name, want in expected.items():
        assert _near(sizes[name], want), (name, sizes[name], want)
        assert max(sizes[name]) <= {"thumb": 256, "medium": 1024, "large": 2048}[name]


def test_extreme_aspect_ratio_keeps_at_least_one_pixel():
    sizes = _sizes(run(encode(solid(RED, (2000, 4)), "PNG"), variants=(Variant("thumb", 256),)))
    assert sizes["thumb"] == (256, 1)


def test_custom_variants_keep_their_configured_order():
    variants = (Variant("b", 100), Variant("a", 50), Variant("c", 75))
    result = run(encode(solid(RED, (400, 200)), "PNG"), variants=variants)
    assert [variant.name for variant in result.variants] == ["b", "a", "c"]
    sizes = _sizes(result)
    assert all(_near(sizes[name], want) for name, want in {"b": (100, 50), "a": (50, 25), "c": (75, 38)}.items())


@pytest.mark.parametrize("output_format", ALL_FORMATS)
def test_output_format_is_selectable(output_format):
    result = run(encode(noise((120, 80)), "PNG"), output_format=output_format)
    extension = {"webp": "webp", "avif": "avif", "jpeg": "jpg", "png": "png", "gif": "gif", "tiff": "tiff"}[
        output_format.value
    ]
    for variant in result.variants:
        assert variant.primary.format == output_format.value
        assert variant.primary.content_type == f"image/{output_format.value}"
        assert variant.primary.extension == extension
        assert variant.primary.bytes == len(variant.primary.data) > 0
        assert decode(variant.primary.data).format == PIL_NAME[output_format]


def test_jpeg_output_is_progressive():
    result = run(encode(noise((120, 80)), "PNG"), output_format=OutputFormat.JPEG)
    for variant in result.variants:
        info = decode(variant.primary.data).info
        assert info.get("progressive") or info.get("progression"), sorted(info)


@pytest.mark.parametrize("output_format", [OutputFormat.WEBP, OutputFormat.JPEG, OutputFormat.AVIF])
def test_quality_setting_is_applied(output_format):
    data = encode(noise((96, 64), seed=7), "PNG")
    low = run(data, output_format=output_format, quality=20, variants=(Variant("v", 96),))
    high = run(data, output_format=output_format, quality=95, variants=(Variant("v", 96),))
    assert high.variants[0].primary.bytes > low.variants[0].primary.bytes * 1.3


def test_downscale_is_lanczos_class():
    source = pattern_image((512, 384))
    result = run(encode(source, "PNG"), output_format=OutputFormat.PNG, variants=(Variant("v", 128),))
    output = np.asarray(decode(result.variants[0].primary.data).convert("RGB"), dtype=float)
    reference = np.asarray(source.resize((128, 96), Image.Resampling.LANCZOS), dtype=float)
    assert output.shape == reference.shape
    # An exact Lanczos resize scores 0, Pillow's thumbnail() ~0.6, a box reduce ~4, nearest neighbour ~38.
    assert np.abs(output - reference).mean() < 2.0


def test_source_facts():
    data = encode(noise((70, 50)), "JPEG", quality=90)
    source = run(data).source
    assert (source.format, source.width, source.height, source.bytes, source.frames) == ("JPEG", 70, 50, len(data), 1)


def test_lossless_png_output_reproduces_pixels_when_not_resized():
    image = noise((40, 30), seed=11)
    result = run(encode(image, "PNG"), output_format=OutputFormat.PNG, variants=(Variant("full", 64),))
    assert np.array_equal(np.asarray(decode(result.variants[0].primary.data).convert("RGB")), np.asarray(image))


# ---------------------------------------------------------------------------
# Placeholder
# ---------------------------------------------------------------------------


def _hex(colour: str) -> tuple[int, int, int]:
    """Parse '#rrggbb'."""
    assert re.fullmatch(r"#[0-9a-f]{6}", colour), colour
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


@pytest.mark.parametrize("colour", [RED, GREEN, (20, 40, 200), (250, 250, 250)])
def test_placeholder_of_a_solid_image(colour):
    placeholder = run(encode(solid(colour, (64, 48)), "PNG")).placeholder
    assert close(_hex(placeholder.dominant_color), colour, 24)
    assert len(placeholder.blurhash) >= 6 and blurhash.is_valid_blurhash(placeholder.blurhash)
    painted = blurhash.decode(placeholder.blurhash, 4, 4).convert("RGB")
    assert close(painted.getpixel((2, 2)), colour, 40)
    average = thumbhash.thumb_hash_to_average_rgba(base64.b64decode(placeholder.thumbhash, validate=True))
    assert close([round(channel * 255) for channel in average], (*colour, 255), 24)
    assert placeholder.as_record() == {
        "dominantColor": placeholder.dominant_color,
        "blurhash": placeholder.blurhash,
        "thumbhash": placeholder.thumbhash,
    }


def test_dominant_colour_is_the_majority_colour():
    image = solid(BLUE, (80, 80))
    image.paste(RED, (0, 0, 20, 80))
    placeholder = run(encode(image, "PNG")).placeholder
    red, _, blue = _hex(placeholder.dominant_color)
    assert blue > 150 and blue > red


@pytest.mark.parametrize(
    ("data", "overrides"),
    [
        pytest.param(encode(noise((120, 90)), "JPEG", quality=90), {}, id="still"),
        pytest.param(encode(half_transparent(), "PNG"), {"output_format": OutputFormat.PNG}, id="alpha"),
        pytest.param(
            animated_bytes("GIF", (RED, GREEN, BLUE)),
            {"keep_animation": True, "output_format": OutputFormat.WEBP},
            id="animation",
        ),
    ],
)
def test_no_placeholder_when_none_is_asked_for_and_the_same_variants(data, overrides):
    variants = (Variant("small", 40), Variant("large", 100))
    made = run(data, variants=variants, **overrides)
    bare = run(data, variants=variants, placeholder=False, **overrides)
    assert made.placeholder is not None
    assert bare.placeholder is None
    assert bare.source == made.source
    assert bare.variants == made.variants


def test_placeholder_follows_orientation():
    # Displayed: top half red, bottom half blue; stored upside down with orientation 3.
    canonical = solid(RED, (64, 48))
    canonical.paste(BLUE, (0, 24, 64, 48))
    data = encode(canonical.transpose(Image.Transpose.ROTATE_180), "JPEG", quality=95, exif=exif_bytes(3))
    painted = blurhash.decode(run(data).placeholder.blurhash, 8, 8).convert("RGB")
    top, bottom = painted.getpixel((4, 0)), painted.getpixel((4, 7))
    assert top[0] > top[2] and bottom[2] > bottom[0], (top, bottom)


# ---------------------------------------------------------------------------
# The fixtures themselves (so a failure above points at the core, not at a broken fixture)
# ---------------------------------------------------------------------------


def test_fixture_profiles_behave_as_documented():
    import io

    from PIL import ImageCms

    srgb = ImageCms.createProfile("sRGB")
    swapped = ImageCms.ImageCmsProfile(io.BytesIO(swapped_rgb_profile()))
    assert close(ImageCms.profileToProfile(solid(RED), swapped, srgb, outputMode="RGB").getpixel((0, 0)), BLUE, 10)
    cmyk = ImageCms.ImageCmsProfile(io.BytesIO(weird_cmyk_profile()))
    for ink in [(255, 0, 0, 0), (0, 0, 255, 0)]:
        converted = ImageCms.profileToProfile(Image.new("CMYK", (2, 2), ink), cmyk, srgb, outputMode="RGB")
        assert close(converted.getpixel((0, 0)), cmyk_profile_target(*ink), 12)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_fixture_orientations_display_canonically_with_pillow(orientation):
    from PIL import ImageOps

    stored = decode(oriented_bytes(orientation))
    assert stored.getexif().get(0x0112) == orientation
    assert_canonical(ImageOps.exif_transpose(stored))
