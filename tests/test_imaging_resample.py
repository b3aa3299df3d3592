"""Downscaling through libvips: exact sizes, Pillow's Lanczos to within rounding, premultiplied alpha, no loaders."""

import random

import numpy as np
import pytest
from PIL import Image

from image_pipeline.imaging.resample import downscale
from tests.imaging_fixtures import noise


def detailed(size: tuple[int, int], mode: str) -> Image.Image:
    """Fine structure in every channel (no two channels alike), so that a misplaced or misweighted tap shows."""
    extents = [(-2.0, -1.2, 0.8, 1.2), (-1.8, -1.0, 0.6, 1.0), (-0.8, -0.3, -0.5, 0.0), (-2.2, -1.5, 1.0, 1.5)]
    bands = [Image.effect_mandelbrot(size, extent, 120) for extent in extents[: len(mode)]]
    return bands[0] if mode == "L" else Image.merge(mode, bands)


def psnr(a: Image.Image, b: Image.Image) -> float:
    difference = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255**2 / max((difference**2).mean(), 1e-12)))


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize(
    ("size", "target"),
    [
        ((3264, 2448), (2048, 1536)),  # a photo to the largest box: Lanczos alone
        ((2048, 1536), (1024, 768)),  # an exact halving
        ((701, 1024), (175, 256)),  # a box reduce whose factor leaves a partial column
        ((1216, 832), (256, 175)),
        ((3000, 200), (64, 4)),  # a large factor on one axis
    ],
)
def test_downscale_matches_pillows_lanczos(mode, size, target):
    image = detailed(size, mode)
    reference = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)

    result = downscale(image, target)

    assert (result.mode, result.size) == (mode, target)
    # Only rounding (fixed point against Pillow's) and edge handling differ: 40 dB is well below one level in 100.
    assert psnr(result, reference) > 40


def test_every_size_comes_out_exactly():
    rng = random.Random(7)
    source = noise((900, 700))
    for _ in range(200):
        target = rng.randint(1, 900), rng.randint(1, 700)
        assert downscale(source, target).size == target


def test_transparent_pixels_lend_no_colour():
    # Opaque red beside fully transparent green: filtering across the edge must not tint the red with green.
    image = Image.new("RGBA", (400, 100), (0, 255, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 200, 100))

    result = downscale(image, (37, 10))

    for x in range(result.width):
        red, green, _, alpha = result.getpixel((x, 5))
        if alpha:
            assert green == 0 and red > 200, (x, result.getpixel((x, 5)))


def test_same_size_is_the_image_itself_and_larger_or_other_modes_are_refused():
    image = noise((40, 30))
    assert downscale(image, (40, 30)) is image
    with pytest.raises(ValueError, match="larger"):
        downscale(image, (41, 30))
    with pytest.raises(ValueError, match="mode P"):
        downscale(image.convert("P"), (20, 15))


def test_libvips_reads_no_file_formats():
    # Only pixels Pillow decoded reach libvips; its own loaders, a second parser of untrusted bytes, are blocked.
    import io

    import pyvips

    png = io.BytesIO()
    noise((8, 8)).save(png, "PNG")
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(png.getvalue(), "")
