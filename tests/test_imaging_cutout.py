"""Background removal in the imaging core, with tiny models whose masks are known (tests/cutout_models.py).

A coloured shape on a flat white background: the model marks every pixel that is not the background, so the
subject must come out opaque and the background transparent in every variant and every format with alpha, and
JPEG must show the route's background colour where the picture's was.
"""

from __future__ import annotations

import functools
import io

import pytest
from PIL import Image, ImageDraw

from image_pipeline.errors import ModelUnusable
from image_pipeline.imaging import cutout_model
from image_pipeline.imaging.cutout import MIN_COVERAGE, TRIM_MARGIN, WORKING_EDGE, cutout_step, load_matting
from image_pipeline.imaging.pipeline import make_variants
from image_pipeline.options import CutoutFamily, CutoutSpec, Encoding, Fit, ImagingOptions, OutputFormat, Variant
from image_pipeline.results import CutoutFacts
from tests.cutout_models import constant_model, flat_background_model, spec_for
from tests.imaging_fixtures import close, decode, encode, exif_bytes, swapped_rgb_profile

WHITE = (255, 255, 255)
SUBJECT = (220, 30, 30)
ROUTE_BACKGROUND = (20, 40, 200)
# The subject's box as fractions of the picture (left, top, right, bottom).
BOX = (0.25, 0.3, 0.6, 0.8)
# Points well inside the subject and well inside the background, as fractions (clear of the mask's soft edge).
INSIDE = ((0.42, 0.55), (0.35, 0.42), (0.5, 0.7))
OUTSIDE = ((0.05, 0.05), (0.9, 0.5), (0.42, 0.92), (0.1, 0.6))
ALL_FORMATS = tuple(Encoding(fmt, fmt.default_quality) for fmt in OutputFormat)
VARIANTS = (Variant("thumb", 64), Variant("medium", 300), Variant("large", 4096))
# AVIF codes alpha lossily, as it does colour: a few levels of ringing where a small variant's edge is near.
ALPHA_TOLERANCE = {"avif": 3}
# The formats written without alpha, flattened onto the route's background.
FLATTENED = ("jpeg", "tiff")


@functools.cache
def matting(family: CutoutFamily = CutoutFamily.ISNET, background: tuple[int, int, int] = WHITE):
    model = flat_background_model(family, background)
    return load_matting(model, spec_for(model, family), threads=1)


def shape_on_background(size, background=WHITE, colour=SUBJECT, mode="RGB") -> Image.Image:
    picture = Image.new(mode, size, background)
    width, height = size
    left, top, right, bottom = BOX
    box = (round(left * width), round(top * height), round(right * width) - 1, round(bottom * height) - 1)
    ImageDraw.Draw(picture).rectangle(box, fill=colour)
    return picture


def png(picture: Image.Image, **params) -> bytes:
    return encode(picture, "PNG", **params)


def options(variants=VARIANTS, encodings=ALL_FORMATS, **more) -> ImagingOptions:
    return ImagingOptions(variants=variants, encodings=encodings, background=ROUTE_BACKGROUND, **more)


def cut(data: bytes, trim: bool = False, family: CutoutFamily = CutoutFamily.ISNET, **more):
    return make_variants(data, options(**more), content_steps=(cutout_step(matting(family), trim),))


def at(image: Image.Image, fraction) -> tuple[int, ...]:
    x, y = fraction
    return image.convert("RGBA").getpixel((min(image.width - 1, int(x * image.width)), int(y * image.height)))


def outputs(result):
    for variant in result.variants:
        for encoded in variant.encodings:
            yield variant, encoded, decode(encoded.data)


def assert_cut_out(result, inside=INSIDE, outside=OUTSIDE):
    for variant, encoded, image in outputs(result):
        assert image.size == (variant.width, variant.height)
        where = f"{variant.name} {encoded.format}"
        if encoded.format in FLATTENED:
            assert image.mode == "RGB", where
            assert all(close(at(image, point)[:3], ROUTE_BACKGROUND, 12) for point in outside), where
        else:
            assert image.mode == ("P" if encoded.format == "gif" else "RGBA"), where
            tolerance = ALPHA_TOLERANCE.get(encoded.format, 0)
            assert max(at(image, point)[3] for point in outside) <= tolerance, where
            assert min(at(image, point)[3] for point in inside) >= 255 - tolerance, where
        assert all(close(at(image, point)[:3], SUBJECT, 16) for point in inside), where


# ---------------------------------------------------------------------------
# Exact alpha, every variant and format
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(CutoutFamily))
@pytest.mark.parametrize("size", [(600, 900), (1200, 700)], ids=["portrait", "landscape"])
def test_subject_opaque_background_transparent_in_every_variant_and_format(family, size):
    result = cut(png(shape_on_background(size)), family=family)
    assert_cut_out(result)
    assert result.cutout == CutoutFacts(True, f"{family.value}:{spec_label_tail(family)}", result.cutout.coverage)


def spec_label_tail(family: CutoutFamily) -> str:
    return spec_for(flat_background_model(family, WHITE), family).sha256[:12]


def test_a_cover_variant_is_cut_from_the_cut_out():
    result = cut(png(shape_on_background((900, 600))), variants=(Variant("square", 96, fit=Fit.COVER),))
    for _, encoded, image in outputs(result):
        assert image.size == (96, 96)
        if encoded.format in ("png", "webp"):
            # The centre crop of a landscape keeps its full height: the subject spans x 0.125..0.65 of the square.
            assert at(image, (0.4, 0.55))[3] == 255 and at(image, (0.9, 0.5))[3] == 0 and at(image, (0.4, 0.1))[3] == 0


def test_the_coverage_is_the_share_of_subject_pixels():
    result = cut(png(shape_on_background((800, 1000))))
    left, top, right, bottom = BOX
    assert result.cutout.coverage == pytest.approx((right - left) * (bottom - top), abs=0.003)
    assert result.cutout.as_record() == {
        "applied": True,
        "model": result.cutout.model,
        "coverage": result.cutout.coverage,
    }


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_before_the_cutout(orientation):
    upright = shape_on_background((400, 600))
    stored = upright.transpose(
        {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    )
    data = encode(stored, "JPEG", quality=95, exif=exif_bytes(orientation))
    result = cut(data)
    assert (result.source.width, result.source.height) == (400, 600)
    assert_cut_out(result)


def test_the_model_sees_the_picture_in_srgb():
    # Stored blue displays red through the profile: the model knows only the displayed red background.
    displayed_background, displayed_subject = (255, 0, 0), (0, 0, 255)
    stored = shape_on_background((500, 400), background=(0, 0, 255), colour=(255, 0, 0))
    data = png(stored, icc_profile=swapped_rgb_profile())
    result = make_variants(
        data,
        options(encodings=(Encoding(OutputFormat.PNG, 100),)),
        content_steps=(cutout_step(matting(CutoutFamily.ISNET, displayed_background), trim=False),),
    )
    for _, _, image in outputs(result):
        assert [at(image, point)[3] for point in OUTSIDE] == [0] * len(OUTSIDE)
        assert all(close(at(image, point), (*displayed_subject, 255), 12) for point in INSIDE)


def test_existing_alpha_is_kept_where_it_is_lower_than_the_mask():
    picture = shape_on_background((600, 600), mode="RGBA")
    # The subject's right half was already transparent in the upload; its colour is still the subject's.
    hidden = Image.new("RGBA", (90, 300), (*SUBJECT, 0))
    picture.paste(hidden, (270, 180))
    result = cut(png(picture), encodings=(Encoding(OutputFormat.PNG, 100), Encoding(OutputFormat.WEBP, 80)))
    for _, _, image in outputs(result):
        assert at(image, (0.3, 0.55))[3] == 255
        assert at(image, (0.52, 0.55))[3] == 0
        assert at(image, (0.05, 0.05))[3] == 0


def test_an_animation_is_cut_from_its_first_frame():
    frames = [shape_on_background((300, 200)), Image.new("RGB", (300, 200), (0, 200, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = cut(buffer.getvalue(), keep_animation=True, encodings=(Encoding(OutputFormat.WEBP, 80),))
    assert result.cutout.applied
    for _, _, image in outputs(result):
        assert getattr(image, "n_frames", 1) == 1
    assert_cut_out(result)


def test_a_grey_picture_is_cut_out():
    result = cut(png(shape_on_background((300, 300), background=255, colour=60, mode="L")))
    assert result.cutout.applied
    for _, encoded, image in outputs(result):
        if encoded.format not in FLATTENED:
            assert at(image, (0.42, 0.55))[3] == 255 and at(image, (0.05, 0.05))[3] == 0


# ---------------------------------------------------------------------------
# The working size, trim, the placeholder and the callback
# ---------------------------------------------------------------------------


def test_variants_larger_than_the_working_copy_are_made_at_its_size():
    result = cut(png(shape_on_background((3000, 1500))), encodings=(Encoding(OutputFormat.PNG, 100),))
    large = next(variant for variant in result.variants if variant.name == "large")
    assert (large.width, large.height) == (WORKING_EDGE, WORKING_EDGE // 2)
    assert (result.source.width, result.source.height) == (3000, 1500)
    assert_cut_out(result)


@pytest.mark.parametrize("size", [(600, 900), (1200, 700)], ids=["portrait", "landscape"])
def test_trim_crops_to_the_subject_plus_a_margin(size):
    result = cut(png(shape_on_background(size)), trim=True, encodings=(Encoding(OutputFormat.PNG, 100),))
    width, height = size
    left, top, right, bottom = BOX
    subject = (round((right - left) * width), round((bottom - top) * height))
    margin = round(TRIM_MARGIN * max(subject))
    large = decode(next(variant for variant in result.variants if variant.name == "large").primary.data)
    # The mask's soft edge (resized back from the model's size) may add a pixel or two on each side.
    assert abs(large.width - (subject[0] + 2 * margin)) <= 6
    assert abs(large.height - (subject[1] + 2 * margin)) <= 6
    alpha = large.getchannel("A")
    assert alpha.getpixel((large.width // 2, large.height // 2)) == 255
    assert alpha.getpixel((0, 0)) == 0 and alpha.getpixel((large.width - 1, large.height - 1)) == 0
    interior = alpha.crop((margin + 4, margin + 4, large.width - margin - 4, large.height - margin - 4))
    assert interior.getextrema() == (255, 255)


def test_the_dominant_colour_is_the_subjects_and_the_blurhash_is_on_the_background():
    # The subject covers a sixth of the picture; the (hidden) white background would win a count of every pixel.
    result = cut(png(shape_on_background((600, 600))), encodings=(Encoding(OutputFormat.WEBP, 80),))
    red, green, blue = (int(result.placeholder.dominant_color[i : i + 2], 16) for i in (1, 3, 5))
    assert close((red, green, blue), SUBJECT, 24)
    assert result.placeholder.thumbhash is not None
    uncut = make_variants(png(shape_on_background((600, 600))), options(encodings=(Encoding(OutputFormat.WEBP, 80),)))
    assert result.placeholder.blurhash != uncut.placeholder.blurhash


def test_on_content_done_is_called_once_after_the_content_steps():
    calls = []
    step = cutout_step(matting(), trim=False)

    def recording_step(picture):
        calls.append("step")
        return step(picture)

    make_variants(
        png(shape_on_background((200, 200))),
        options(encodings=(Encoding(OutputFormat.WEBP, 80),)),
        content_steps=(recording_step,),
        on_content_done=lambda: calls.append("done"),
    )
    assert calls == ["step", "done"]


def test_without_a_cutout_there_are_no_cutout_facts():
    assert make_variants(png(shape_on_background((100, 100))), options()).cutout is None


# ---------------------------------------------------------------------------
# No subject
# ---------------------------------------------------------------------------


def assert_uncut(result):
    assert result.cutout == CutoutFacts(False, reason="no_subject")
    assert result.cutout.as_record() == {"applied": False, "reason": "no_subject"}
    for _, _, image in outputs(result):
        assert image.convert("RGBA").getchannel("A").getextrema() == (255, 255)


@pytest.mark.parametrize("family", list(CutoutFamily))
def test_a_constant_model_output_leaves_the_image_uncut(family):
    model = constant_model(family)
    step = cutout_step(load_matting(model, spec_for(model, family), threads=1), trim=True)
    picture = shape_on_background((400, 300))
    result = make_variants(png(picture), options(), content_steps=(step,))
    assert_uncut(result)
    large = next(variant for variant in result.variants if variant.name == "large")
    assert (large.width, large.height) == (400, 300)


def test_a_flat_picture_has_no_subject():
    assert_uncut(cut(png(Image.new("RGB", (500, 400), WHITE))))


def test_a_subject_below_the_minimum_coverage_leaves_the_image_uncut():
    picture = Image.new("RGB", (1000, 1000), WHITE)
    side = int((MIN_COVERAGE / 2) ** 0.5 * 1000)  # half the minimum share
    ImageDraw.Draw(picture).rectangle((500, 500, 500 + side, 500 + side), fill=SUBJECT)
    assert_uncut(cut(png(picture), encodings=(Encoding(OutputFormat.PNG, 100),)))


# ---------------------------------------------------------------------------
# The model file
# ---------------------------------------------------------------------------


def test_a_checksum_mismatch_never_loads_or_runs_the_model(monkeypatch):
    def never(*_args, **_kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cutout_model, "OnnxMatting", never)
    model = flat_background_model(CutoutFamily.ISNET)
    spec = CutoutSpec(CutoutFamily.ISNET, "models/test.onnx", "0" * 64)
    with pytest.raises(ModelUnusable, match="sha256 mismatch") as raised:
        load_matting(model, spec, threads=1)
    assert spec.label in str(raised.value)


def test_the_checksum_may_be_given_in_capitals():
    model = flat_background_model(CutoutFamily.U2NET)
    spec = spec_for(model, CutoutFamily.U2NET)
    loaded = load_matting(model, CutoutSpec(spec.family, spec.uri, spec.sha256.upper()), threads=1)
    assert loaded.label == spec.label


@pytest.mark.parametrize(
    ("model", "family", "problem"),
    [
        (b"not an onnx file", CutoutFamily.ISNET, "cannot load it"),
        (flat_background_model(CutoutFamily.U2NET), CutoutFamily.ISNET, "do not fit family isnet"),
        (flat_background_model(CutoutFamily.ISNET), CutoutFamily.U2NET, "do not fit family u2net"),
    ],
    ids=["garbage", "u2net-file-as-isnet", "isnet-file-as-u2net"],
)
def test_an_unusable_model_is_refused_by_name(model, family, problem):
    spec = spec_for(model, family)
    with pytest.raises(ModelUnusable, match=problem) as raised:
        load_matting(model, spec, threads=1)
    assert spec.label in str(raised.value)
