"""No process-wide state changes per call: per-call limits in parallel threads, and decoder warnings as per-image facts.

pytest records warnings by swapping `warnings.showwarning` around every test, which would bypass the core's hook; the
checks of the hook therefore run in a fresh interpreter, as the function runs in production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.results import DecoderWarnings
from tests.imaging_fixtures import RED, encode, format_sample, run, solid

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 40


@pytest.mark.parametrize("name", ["png", "jpeg", "gif", "tiff"])
def test_parallel_calls_keep_their_own_pixel_limit(name):
    data = format_sample(name, RED, (40, 40))  # 1600 pixels
    outcomes: dict[int, list[str]] = {1000: [], 1600: []}
    barrier = threading.Barrier(2)

    def process(max_pixels: int) -> None:
        for _ in range(ROUNDS):
            barrier.wait()
            try:
                run(data, max_pixels=max_pixels)
            except ImageRejected as rejection:
                outcomes[max_pixels].append(rejection.code.value)
            else:
                outcomes[max_pixels].append("ok")

    threads = [threading.Thread(target=process, args=(limit,)) for limit in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {1000: [RejectionCode.TOO_LARGE.value] * ROUNDS, 1600: ["ok"] * ROUNDS}


def test_a_clean_image_reports_no_warnings():
    assert run(encode(solid(RED), "PNG")).warnings == DecoderWarnings(0, ())


WARNINGS_SCRIPT = r"""
import io, json, sys, threading, warnings
from PIL import Image
from image_pipeline.errors import ImageRejected
from image_pipeline.imaging import make_variants
from image_pipeline.imaging.decoder_warnings import collecting
from image_pipeline.options import ImagingOptions
from tests.imaging_fixtures import encode, solid, tiff_libtiff_complains, tiff_pillow_logs_an_error, tiff_pillow_warns

options = ImagingOptions()
libtiff, pillow, clean = tiff_libtiff_complains(), tiff_pillow_warns(), encode(solid((1, 2, 3), (64, 48)), "PNG")
out = {}

def facts(data):
    result = make_variants(data, options)
    return [result.warnings.count, list(result.warnings.messages), result.variants[0].width]

out["libtiff"] = [facts(libtiff), facts(libtiff)]
out["pillow"] = [facts(pillow), facts(pillow)]
out["clean"] = facts(clean)

parallel = {"libtiff": [], "clean": []}
barrier = threading.Barrier(2)
def worker(name, data):
    for _ in range(20):
        barrier.wait()
        parallel[name].append(make_variants(data, options).warnings.count)
threads = [threading.Thread(target=worker, args=item) for item in (("libtiff", libtiff), ("clean", clean))]
for thread in threads: thread.start()
for thread in threads: thread.join()
out["parallel"] = parallel

try:
    make_variants(tiff_pillow_logs_an_error(), options)
    out["logged"] = "made"
except ImageRejected as rejection:
    out["logged"] = rejection.code.value

try:
    with collecting():
        warnings.warn("a canvas past the backstop", Image.DecompressionBombWarning)
    out["bomb"] = "passed"
except ImageRejected as rejection:
    out["bomb"] = rejection.code.value

sys.stderr.write("--- outside a core call ---\n")
warnings.warn("OUTSIDEWARNING", UserWarning)
Image.open(io.BytesIO(libtiff)).load()
try:
    Image.open(io.BytesIO(tiff_pillow_logs_an_error()))
except Exception:
    pass
sys.stderr.flush()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def report() -> tuple[dict, str, str]:
    """The warnings script's JSON and its stderr before and after the 'outside a core call' marker."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", WARNINGS_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    during, _, outside = done.stderr.partition("--- outside a core call ---\n")
    return json.loads(done.stdout.strip().splitlines()[-1]), during, outside


@pytest.mark.parametrize(("name", "expected"), [("libtiff", "libtiff TIFFFetchNormalTag"), ("pillow", "Truncated")])
def test_decoder_warnings_are_counted_per_image_with_their_first_messages(report, name, expected):
    first, again = report[0][name]
    count, messages, width = first
    assert width == 64  # the image was made all the same
    assert count >= 1 and len(messages) <= count
    assert any(message.startswith(expected) for message in messages), messages
    # Not hidden the second time by the "once per location" default.
    assert again == first


def test_warnings_go_to_the_call_that_raised_them(report):
    out = report[0]
    single = out["libtiff"][0][0]
    assert out["clean"][0] == 0
    assert out["parallel"] == {"libtiff": [single] * 20, "clean": [0] * 20}


def test_no_raw_decoder_output_during_core_calls(report):
    _, during, _ = report
    assert "TIFFFetchNormalTag" not in during
    assert "Truncated File Read" not in during
    assert "More samples per pixel" not in during
    assert during.strip() == ""


def test_a_file_pillow_logs_an_error_for_is_rejected_without_a_line(report):
    assert report[0]["logged"] == RejectionCode.CORRUPT_IMAGE.value


def test_a_decompression_bomb_warning_during_a_call_is_too_large(report):
    assert report[0]["bomb"] == RejectionCode.TOO_LARGE.value


def test_outside_a_core_call_warnings_go_where_they_went_before(report):
    _, _, outside = report
    assert "OUTSIDEWARNING" in outside
    assert "TIFFFetchNormalTag" in outside  # libtiff's own handler still prints for code that is not the core
    assert "More samples per pixel" in outside  # and Pillow's log records reach Python's own handling
