"""Geometry: the sizes and crops every variant is planned as, and the cascade's rule for what renders what."""

import pytest
from PIL import Image

from image_pipeline.imaging.geometry import WHOLE, Rendition, cover, covers, fit_inside, plan, render, required_size
from image_pipeline.options import Fit, Gravity, Variant


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((4000, 3000), (2048, 2048), (2048, 1536)),
        ((3000, 4000), (256, 256), (192, 256)),
        ((500, 300), (1024, 1024), (500, 300)),
        ((10000, 10), (256, 256), (256, 1)),
        ((2048, 2048), (2048, 2048), (2048, 2048)),
        ((4000, 3000), (1200, 630), (840, 630)),
        ((3000, 4000), (1200, 630), (472, 630)),
        ((800, 600), (1200, 630), (800, 600)),
    ],
)
def test_fit_inside_keeps_aspect_and_never_upscales(size, box, expected):
    assert fit_inside(size, box) == expected


@pytest.mark.parametrize(
    ("size", "box", "output", "crop"),
    [
        ((4000, 3000), (256, 256), (256, 256), (500, 0, 3500, 3000)),
        ((3000, 4000), (256, 256), (256, 256), (0, 500, 3000, 3500)),
        ((4000, 3000), (1200, 630), (1200, 630), (0, 450, 4000, 2550)),
        ((201, 100), (256, 256), (100, 100), (50, 0, 150, 100)),
        ((800, 600), (1200, 630), (800, 420), (0, 90, 800, 510)),
        ((10, 10), (64, 64), (10, 10), (0, 0, 10, 10)),
    ],
)
def test_cover_crops_the_centre_to_the_box_aspect_and_never_upscales(size, box, output, crop):
    rendition = cover(size, box)
    assert rendition.size == output
    width, height = size
    left, top, right, bottom = rendition.region
    assert (round(left * width), round(top * height), round(right * width), round(bottom * height)) == crop


@pytest.mark.parametrize(
    ("gravity", "landscape_crop", "portrait_crop"),
    [
        (Gravity.CENTRE, (500, 0, 3500, 3000), (0, 500, 3000, 3500)),
        (Gravity.NORTH, (500, 0, 3500, 3000), (0, 0, 3000, 3000)),
        (Gravity.NORTHEAST, (1000, 0, 4000, 3000), (0, 0, 3000, 3000)),
        (Gravity.EAST, (1000, 0, 4000, 3000), (0, 500, 3000, 3500)),
        (Gravity.SOUTHEAST, (1000, 0, 4000, 3000), (0, 1000, 3000, 4000)),
        (Gravity.SOUTH, (500, 0, 3500, 3000), (0, 1000, 3000, 4000)),
        (Gravity.SOUTHWEST, (0, 0, 3000, 3000), (0, 1000, 3000, 4000)),
        (Gravity.WEST, (0, 0, 3000, 3000), (0, 500, 3000, 3500)),
        (Gravity.NORTHWEST, (0, 0, 3000, 3000), (0, 0, 3000, 3000)),
    ],
)
def test_cover_keeps_the_side_or_corner_its_gravity_names(gravity, landscape_crop, portrait_crop):
    for size, crop in (((4000, 3000), landscape_crop), ((3000, 4000), portrait_crop)):
        rendition = cover(size, (256, 256), gravity)
        assert rendition.size == (256, 256)
        width, height = size
        left, top, right, bottom = rendition.region
        assert (round(left * width), round(top * height), round(right * width), round(bottom * height)) == crop
        assert plan(size, Variant("v", 256, fit=Fit.COVER, gravity=gravity)) == rendition


def test_gravity_does_not_move_a_fit_inside():
    assert plan((400, 200), Variant("a", 100, gravity=Gravity.SOUTHEAST)) == Rendition(WHOLE, (100, 50))


def test_plan_follows_the_variants_fit():
    assert plan((400, 200), Variant("a", 100)) == Rendition(WHOLE, (100, 50))
    assert plan((400, 200), Variant("b", 100, fit=Fit.COVER)) == Rendition((0.25, 0.0, 0.75, 1.0), (100, 100))


def test_required_size_is_what_the_most_demanding_rendition_needs():
    whole = Rendition(WHOLE, (2048, 1536))
    crop = Rendition((0.25, 0.0, 0.75, 1.0), (1500, 1500))
    assert required_size([whole]) == (2048, 1536)
    assert required_size([whole, crop]) == (3000, 1536)


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (Rendition(WHOLE, (1024, 768)), Rendition(WHOLE, (256, 192)), True),
        (Rendition(WHOLE, (256, 192)), Rendition(WHOLE, (1024, 768)), False),
        (Rendition(WHOLE, (256, 192)), Rendition((0.125, 0.0, 0.875, 1.0), (192, 192)), True),
        (Rendition(WHOLE, (256, 192)), Rendition((0.125, 0.0, 0.875, 1.0), (193, 193)), False),
        (Rendition((0.125, 0.0, 0.875, 1.0), (1024, 1024)), Rendition(WHOLE, (256, 192)), False),
        (Rendition((0.125, 0.0, 0.875, 1.0), (1024, 1024)), Rendition((0.125, 0.0, 0.875, 1.0), (64, 64)), True),
    ],
    ids=["larger-whole", "smaller-whole", "crop-from-whole", "crop-would-upscale", "whole-from-crop", "crop-from-crop"],
)
def test_covers_means_holds_the_region_at_no_less_resolution(source, target, expected):
    assert covers(source, target) is expected


def test_a_crop_is_held_only_by_renditions_that_show_its_side():
    north, small_north = cover((300, 600), (100, 100), Gravity.NORTH), cover((300, 600), (40, 40), Gravity.NORTH)
    south = cover((300, 600), (50, 50), Gravity.SOUTH)
    whole = Rendition(WHOLE, (150, 300))
    assert covers(whole, north) and covers(whole, south) and covers(north, small_north)
    assert not covers(north, south) and not covers(south, small_north)


def test_render_crops_without_resampling_at_source_resolution():
    picture = Image.linear_gradient("L").convert("RGB").resize((201, 100))
    target = cover(picture.size, (256, 256))
    assert render(picture, WHOLE, target).tobytes() == picture.crop((50, 0, 150, 100)).tobytes()
    assert render(picture, WHOLE, Rendition(WHOLE, picture.size)) is picture
