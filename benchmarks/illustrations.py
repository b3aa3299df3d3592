"""Generated illustrations: the kind of upload CharaForge gets (1-4 MP, flat areas, line art, text, some with alpha).

    python benchmarks/illustrations.py DIR      # writes the set into DIR and prints the paths

Ten deterministic images (same bytes on every run with the same Pillow): flat-shaded shapes, line art, smooth
gradients with soft shapes, text, each with and without alpha, at 1024x1024, 832x1216, 1216x832 and 2048x2048 as
PNG, plus one lossy WebP and one JPEG. Edges are anti-aliased (drawn at twice the size, then Lanczos-halved), as a
drawing program or an image generator would leave them.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

Size = tuple[int, int]
Colour = tuple[int, int, int]

# name, size, painter, alpha, format
_SET: tuple[tuple[str, Size, str, bool, str], ...] = (
    ("flat", (1024, 1024), "flat", False, "PNG"),
    ("lineart", (832, 1216), "lineart", False, "PNG"),
    ("gradient", (1216, 832), "gradient", False, "PNG"),
    ("text", (1024, 1024), "text", False, "PNG"),
    ("painted", (2048, 2048), "gradient", False, "PNG"),
    ("sticker-alpha", (1024, 1024), "flat", True, "PNG"),
    ("lineart-alpha", (1216, 832), "lineart", True, "PNG"),
    ("character-alpha", (832, 1216), "gradient", True, "PNG"),
    ("poster-webp", (1216, 832), "flat", False, "WEBP"),
    ("scene-jpeg", (832, 1216), "gradient", False, "JPEG"),
)
_EXTENSIONS = {"PNG": "png", "WEBP": "webp", "JPEG": "jpg"}
_WORDS = ("image", "route", "pipeline", "variant", "WebP", "sharp", "42")


def generate(folder: Path) -> list[Path]:
    """Write the set into `folder` (created if needed) and return the paths, one distinct stem each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (name, size, painter, alpha, file_format) in enumerate(_SET):
        rng = random.Random(index)
        image = _PAINTERS[painter](size, rng)
        image = _with_alpha(image, rng) if alpha else image
        path = folder / f"{name}_{size[0]}x{size[1]}.{_EXTENSIONS[file_format]}"
        options = {"PNG": {"optimize": False}, "WEBP": {"quality": 90}, "JPEG": {"quality": 90}}[file_format]
        image.save(path, file_format, **options)
        paths.append(path)
    return paths


def _supersampled(size: Size, background: Colour, draw: Callable[[ImageDraw.ImageDraw, Size], None]) -> Image.Image:
    """Draw at twice the size and halve it, for anti-aliased edges."""
    large = (size[0] * 2, size[1] * 2)
    canvas = Image.new("RGB", large, background)
    draw(ImageDraw.Draw(canvas), large)
    return canvas.resize(size, Image.Resampling.LANCZOS)


def _colour(rng: random.Random) -> Colour:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def _flat(size: Size, rng: random.Random) -> Image.Image:
    """Flat-shaded shapes with dark outlines, as cel-shaded art."""

    def draw(pen: ImageDraw.ImageDraw, canvas: Size) -> None:
        width, height = canvas
        for _ in range(40):
            x, y = rng.randrange(width), rng.randrange(height)
            radius = rng.randrange(width // 30, width // 5)
            box = (x - radius, y - radius, x + radius, y + rng.randrange(radius // 2, radius * 2))
            if rng.random() < 0.5:
                pen.ellipse(box, fill=_colour(rng), outline=(20, 20, 30), width=6)
            else:
                points = [(x + rng.randrange(-radius, radius), y + rng.randrange(-radius, radius)) for _ in range(5)]
                pen.polygon(points, fill=_colour(rng), outline=(20, 20, 30), width=6)

    return _supersampled(size, _colour(rng), draw)


def _lineart(size: Size, rng: random.Random) -> Image.Image:
    """Black strokes and hatching on paper white."""

    def draw(pen: ImageDraw.ImageDraw, canvas: Size) -> None:
        width, height = canvas
        for _ in range(120):
            points = [(rng.randrange(width), rng.randrange(height))]
            for _ in range(6):
                last_x, last_y = points[-1]
                points.append((last_x + rng.randrange(-150, 151), last_y + rng.randrange(-150, 151)))
            pen.line(points, fill=(15, 15, 15), width=rng.choice((2, 3, 4, 6)), joint="curve")
        for _ in range(15):
            x, y = rng.randrange(width), rng.randrange(height)
            for step in range(0, 200, 12):
                pen.line([(x + step, y), (x + step + 60, y + 120)], fill=(40, 40, 40), width=2)

    return _supersampled(size, (250, 248, 240), draw)


def _gradient(size: Size, rng: random.Random) -> Image.Image:
    """Smooth two-axis gradients with soft-edged glowing shapes and a little grain, as painted backgrounds."""
    width, height = size
    channels = [
        Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))).resize(size, Image.Resampling.BICUBIC)
        for _ in range(3)
    ]
    base = Image.merge("RGB", channels)
    glow = Image.new("RGB", size, (0, 0, 0))
    pen = ImageDraw.Draw(glow)
    for _ in range(12):
        x, y, radius = rng.randrange(width), rng.randrange(height), rng.randrange(width // 20, width // 6)
        pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_colour(rng))
    glow = glow.filter(ImageFilter.GaussianBlur(width / 60))
    grain = Image.effect_noise(size, 6).convert("RGB")
    return Image.blend(Image.blend(base, glow, 0.45), grain, 0.04)


def _text(size: Size, rng: random.Random) -> Image.Image:
    """Lines of text in several sizes over flat panels, as a comic page or a card."""

    def draw(pen: ImageDraw.ImageDraw, canvas: Size) -> None:
        width, height = canvas
        for row in range(4):
            pen.rectangle((0, row * height // 4, width, (row + 1) * height // 4), fill=_colour(rng))
        y = 20
        while y < height - 40:
            font_size = rng.choice((24, 32, 48, 72))
            font = ImageFont.load_default(font_size)
            words = " ".join(rng.choice(_WORDS) for _ in range(8))
            pen.text((30, y), words, fill=(10, 10, 10), font=font, stroke_width=2, stroke_fill=(255, 255, 255))
            y += font_size + 24

    return _supersampled(size, (255, 255, 255), draw)


def _with_alpha(image: Image.Image, rng: random.Random) -> Image.Image:
    """Cut the picture out along a few soft-edged blobs, the rest fully transparent (a sticker or a cut-out)."""
    width, height = image.size
    mask = Image.new("L", image.size, 0)
    pen = ImageDraw.Draw(mask)
    for _ in range(6):
        x, y = rng.randrange(width // 4, 3 * width // 4), rng.randrange(height // 4, 3 * height // 4)
        radius = rng.randrange(width // 8, width // 3)
        pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    rgba = image.convert("RGBA")
    rgba.putalpha(mask.filter(ImageFilter.GaussianBlur(3)))
    return rgba


_PAINTERS: dict[str, Callable[[Size, random.Random], Image.Image]] = {
    "flat": _flat,
    "lineart": _lineart,
    "gradient": _gradient,
    "text": _text,
}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for written in generate(Path(sys.argv[1])):
        print(written)
