"""The decode-memory estimate: formats that must be decoded in full are refused before they can exhaust memory."""

import io

import pytest
from PIL import Image

from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.imaging import make_variants
from image_pipeline.imaging.decode import jpeg_draft_scale
from image_pipeline.options import ImagingOptions, Variant


def encoded(image_format: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    """A flat image of `size` in `image_format`; small on disk, large once decoded."""
    buffer = io.BytesIO()
    Image.new(mode, size, "gray").save(buffer, image_format)
    return buffer.getvalue()


def options(max_decode_mib: int, edge: int = 256) -> ImagingOptions:
    """One variant and the given decode budget."""
    return ImagingOptions(variants=(Variant("v", edge),), max_decode_mib=max_decode_mib)


@pytest.mark.parametrize(
    ("image_format", "size", "mode"),
    [
        ("PNG", (2000, 2000), "RGB"),
        ("PNG", (1600, 1600), "RGBA"),
        ("WEBP", (1000, 1000), "RGB"),
        ("GIF", (1500, 1500), "L"),
        ("TIFF", (2000, 2000), "RGB"),
    ],
)
def test_full_decodes_over_the_budget_are_too_large(image_format, size, mode):
    with pytest.raises(ImageRejected) as rejection:
        make_variants(encoded(image_format, size, mode), options(max_decode_mib=16))
    assert rejection.value.code is RejectionCode.TOO_LARGE
    assert "MiB" in rejection.value.message


@pytest.mark.parametrize(("image_format", "size"), [("PNG", (1000, 1000)), ("WEBP", (600, 600)), ("GIF", (1000, 1000))])
def test_full_decodes_within_the_budget_succeed(image_format, size):
    result = make_variants(encoded(image_format, size), options(max_decode_mib=16))
    assert result.variants[0].width == 256


def test_a_jpeg_is_budgeted_at_its_draft_scale():
    data = encoded("JPEG", (4000, 4000))
    assert make_variants(data, options(max_decode_mib=16, edge=256)).variants[0].width == 256
    with pytest.raises(ImageRejected):
        make_variants(data, options(max_decode_mib=16, edge=4000))


@pytest.mark.parametrize(
    ("size", "draft", "scale"),
    [
        ((4000, 3000), (1946, 1459), 2),
        ((4000, 3000), (2048, 1536), 1),
        ((6000, 4000), (1946, 1297), 2),
        ((10000, 10000), (1946, 1946), 4),
        ((10000, 10000), (243, 243), 8),
        ((100, 50), (243, 122), 1),
        ((4000, 3000), None, 1),
    ],
)
def test_jpeg_draft_scale_is_the_one_pillow_decodes_at(size, draft, scale):
    assert jpeg_draft_scale(size, draft) == scale
    if draft is not None:
        image = Image.new("RGB", size)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG")
        opened = Image.open(buffer)
        opened.draft("RGB", draft)
        assert opened.size == (-(-size[0] // scale), -(-size[1] // scale))
