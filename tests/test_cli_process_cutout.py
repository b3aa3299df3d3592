"""`process --route NAME` on a route with a cutout: the local model is loaded once and every variant is cut out."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from image_pipeline.__main__ import main
from image_pipeline.options import CutoutFamily
from tests.cutout_models import flat_background_model

ROUTE = """
[[route]]
name = "cut"
match = "up/{uid}/{file}"
document = "u/{uid}"
field = "m"
output = "out/{uid}/"
formats = ["png", "jpeg"]
background = "#102030"
[route.variants]
small = 64
[route.cutout]
family = "isnet"
uri = "{uri}"
sha256 = "{sha256}"
"""


def routes_file(tmp_path: Path, uri: str, sha256: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(ROUTE.replace("{uri}", uri).replace("{sha256}", sha256))
    return path


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, str]:
    data = flat_background_model(CutoutFamily.ISNET)
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def disc(tmp_path: Path) -> Path:
    """A red disc on white: the tiny model's subject is every pixel that is not white."""
    image = Image.new("RGB", (200, 100), "white")
    ImageDraw.Draw(image).ellipse((70, 20, 130, 80), fill=(200, 30, 30))
    path = tmp_path / "disc.png"
    image.save(path)
    return path


def test_a_cutout_route_cuts_out_every_format(capsys, monkeypatch, tmp_path, model, disc) -> None:
    model_path, sha256 = model
    monkeypatch.setenv("ROUTES_FILE", str(routes_file(tmp_path, str(model_path), sha256)))

    code = main(["process", str(disc), "--out", str(tmp_path / "out"), "--route", "cut"])

    line = json.loads(capsys.readouterr().out)
    assert code == 0 and line["cutout"]["applied"] is True
    assert 0.1 < line["cutout"]["coverage"] < 0.2  # the disc is about 14 % of the picture
    png = Image.open(tmp_path / "out" / "disc_small.png")
    jpeg = Image.open(io.BytesIO((tmp_path / "out" / "disc_small.jpg").read_bytes())).convert("RGB")
    assert png.mode == "RGBA" and png.getpixel((2, 2))[3] == 0 and png.getpixel((32, 16))[3] == 255
    assert all(abs(a - b) <= 6 for a, b in zip(jpeg.getpixel((2, 2)), (0x10, 0x20, 0x30), strict=True))


@pytest.mark.parametrize(
    ("uri", "sha256", "message"),
    [
        pytest.param("gs://{bucket}/models/m.onnx", "a" * 64, "local runs read model files only", id="gs"),
        pytest.param("no/such/model.onnx", "a" * 64, "No such file", id="missing"),
        pytest.param("MODEL", "b" * 64, "sha256", id="wrong-checksum"),
    ],
)
def test_an_unusable_model_is_a_usage_error_naming_it(capsys, monkeypatch, tmp_path, model, disc, uri, sha256, message):
    uri = str(model[0]) if uri == "MODEL" else uri
    monkeypatch.setenv("ROUTES_FILE", str(routes_file(tmp_path, uri, sha256)))

    code = main(["process", str(disc), "--out", str(tmp_path / "out"), "--route", "cut"])

    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err.startswith("python -m image_pipeline process: error:") and message in captured.err
