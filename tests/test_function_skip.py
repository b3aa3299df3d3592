"""The entry point: skipped events cost no heavy import and no I/O; every event logs one JSON summary line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SKIP_IN_FRESH_INTERPRETER = """
import json, sys
import main
main.FUNCTION.handle(
    "event-9", "2030-01-01T00:00:00Z", {"bucket": "b", "name": sys.argv[1], "generation": "5", "size": "10"}
)
HEAVY = ("PIL", "pillow_heif", "pyvips", "google.cloud.storage", "google.cloud.firestore", "google.api_core", "grpc",
         "onnxruntime", "numpy", "google.auth", "image_pipeline.gateway.eventarc")
loaded = {
    prefix
    for prefix in HEAVY
    for module in sys.modules
    if module.split(".")[: prefix.count(".") + 1] == prefix.split(".")
}
print(json.dumps(sorted(loaded)))
"""


# Background removal configured: a skipped event still loads no model, numpy or onnxruntime.
CUTOUT = {
    "CUTOUT_FAMILY": "isnet",
    "CUTOUT_MODEL_URI": "gs://{bucket}/models/isnet-anime.onnx",
    "CUTOUT_MODEL_SHA256": "ab" * 32,
}


@pytest.mark.parametrize("cutout", [pytest.param({}, id="plain"), pytest.param(CUTOUT, id="cutout")])
@pytest.mark.parametrize("name", ["showcase-images/u/c/x-5-large.webp", "raw-uploads/u/c/d/x.jpg", "raw-uploads/u/c/"])
def test_a_skipped_event_imports_no_client_and_no_pillow(name: str, cutout: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SKIP_IN_FRESH_INTERPRETER, name],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **cutout},
    )

    *log_lines, modules = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stderr
    assert json.loads(modules) == []
    [summary] = [json.loads(line) for line in log_lines]
    keys = ("severity", "eventId", "bucket", "object", "generation", "stage", "outcome")
    assert {key: summary[key] for key in keys} == {
        "severity": "INFO",
        "eventId": "event-9",
        "bucket": "b",
        "object": name,
        "generation": "5",
        "stage": "parse",
        "outcome": "skipped",
    }
    assert summary["duration_ms"] >= 0 and summary["reason"]


def test_a_configuration_error_stops_the_function_at_start_up() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import main"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "SOURCE_PREFIX": "showcase-images/"},
    )

    assert result.returncode != 0
    assert "OUTPUT_PREFIX 'showcase-images/': " in result.stderr
    assert "trigger the function again (SOURCE_PREFIX is 'showcase-images/')" in result.stderr


EXTENSION_ROUTES = """
[[route]]
name = "storage-resize-images"
extension = "storage-resize-images"
IMG_SIZES = "200x200"
RESIZED_IMAGES_PATH = "thumbs"
"""


def test_an_event_no_extension_route_takes_costs_nothing_either(tmp_path: Path) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(EXTENSION_ROUTES)
    result = subprocess.run(
        [sys.executable, "-c", SKIP_IN_FRESH_INTERPRETER, "images/a.pdf"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "ROUTES_FILE": str(routes)},
    )

    *log_lines, modules = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stderr
    assert json.loads(modules) == []
    [summary] = [json.loads(line) for line in log_lines]
    assert summary["outcome"] == "skipped"
