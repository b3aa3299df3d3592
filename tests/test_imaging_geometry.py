"""Geometry helpers: the fit-inside sizes every variant is made at."""

import pytest

from image_pipeline.imaging.geometry import fit_inside


@pytest.mark.parametrize(
    ("size", "max_edge", "expected"),
    [((4000, 3000), 2048, (2048, 1536)), ((3000, 4000), 256, (192, 256)), ((500, 300), 1024, (500, 300)),
     ((10000, 10), 256, (256, 1)), ((2048, 2048), 2048, (2048, 2048))],
)
def test_fit_inside_keeps_aspect_and_never_upscales(size, max_edge, expected):
    assert fit_inside(size, max_edge) == expected
