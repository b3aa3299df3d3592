"""Acceptance for background removal: a function configured by a routes file with cutout routes, fed Eventarc-style
deliveries on fake-gcs-server and the Firestore emulator, with a tiny model (tests/cutout_models.py) in the bucket.

A live Firestore listener sees the statuses CharaForge's UI shows; a model with the wrong checksum is retried (500)
with nothing written; duplicates and out-of-order deliveries never regress a result, as on every route.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image, ImageDraw

from image_pipeline.devtools import emulators
from image_pipeline.options import CutoutFamily
from tests import conftest
from tests.backend import Backend, token_of
from tests.cutout_models import flat_background_model

OWNER = "user-1"
CHARACTER = "char-1"
MODEL = flat_background_model(CutoutFamily.ISNET)
MODEL_OBJECT = "models/tiny-isnet.onnx"
OUTPUTS = f"showcase-images/{OWNER}/{CHARACTER}/"
SUBJECT = (200, 40, 40)
# Two routes on one model object: the showcase with the model's checksum, and one whose checksum is wrong.
ROUTES = (
    """
[[route]]
name = "showcase"
match = "raw-uploads/{uid}/{characterId}/{file}"
document = "characters/{characterId}"
field = "visuals.showcase"
require = { "meta.userId" = "{uid}" }
owner = "{uid}"
output = "showcase-images/{uid}/{characterId}/"
formats = ["webp", "png"]
[route.mirror]
status = "visuals.showcaseProcessingStatus"
url = "visuals.showcaseImageUrl"
ready = "visuals.isShowcaseProcessed"
[route.variants]
thumb = 256
large = 1024
[route.cutout]
family = "isnet"
uri = "gs://{bucket}/MODEL_OBJECT"
sha256 = "MODEL_SHA256"

[[route]]
name = "wrong-model"
match = "wrong-uploads/{uid}/{characterId}/{file}"
document = "characters/{characterId}"
field = "visuals.showcase"
require = { "meta.userId" = "{uid}" }
output = "wrong-images/{uid}/{characterId}/"
[route.variants]
thumb = 256
[route.cutout]
family = "isnet"
uri = "gs://{bucket}/MODEL_OBJECT"
sha256 = "WRONG_SHA256"
""".replace("MODEL_OBJECT", MODEL_OBJECT)
    .replace("MODEL_SHA256", hashlib.sha256(MODEL).hexdigest())
    .replace("WRONG_SHA256", "0" * 64)
)


@pytest.fixture(scope="module")
def cutout_function_server(
    stack: emulators.LocalStack, storage_proxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[emulators.Service]:
    """A function configured by a routes file with cutout routes, written to a temporary folder."""
    routes = tmp_path_factory.mktemp("cutout-routes") / "routes.toml"
    routes.write_text(ROUTES)
    server = emulators.start_function({**conftest._function_env(stack, storage_proxy), "ROUTES_FILE": str(routes)})
    yield server
    server.stop()


@pytest.fixture
def backend(stack: emulators.LocalStack, cutout_function_server: emulators.Service, storage_proxy) -> Backend:
    """A clean bucket and database holding the model and the character, delivering to the cutout function."""
    helper = conftest._clean_backend(stack, cutout_function_server, storage_proxy)
    helper.upload(MODEL_OBJECT, MODEL, content_type="application/octet-stream")
    helper.seed_character(CHARACTER, OWNER, name="Aria")
    return helper


def subject_on_white(width: int = 2400, height: int = 1800) -> bytes:
    """A red disc in the middle of a flat white picture: what the tiny model cuts out."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=SUBJECT)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def showcase(backend: Backend) -> dict[str, Any]:
    return (backend.document(CHARACTER) or {})["visuals"]["showcase"]


def everything(backend: Backend) -> tuple[Any, dict[str, int]]:
    """The character document and every object's generation: a write or rewrite would change one of them."""
    return backend.document(CHARACTER), {name: blob.generation for name, blob in backend.objects("").items()}


def test_a_live_listener_sees_removing_background_then_finalizing_then_complete(backend: Backend) -> None:
    statuses: list[tuple[str | None, str | None]] = []
    settled = threading.Event()

    def on_snapshot(snapshots, changes, read_time) -> None:
        for snapshot in snapshots:
            visuals = (snapshot.to_dict() or {}).get("visuals", {})
            seen = ((visuals.get("showcase") or {}).get("status"), visuals.get("showcaseProcessingStatus"))
            if seen != (None, None) and (not statuses or statuses[-1] != seen):
                statuses.append(seen)
            if seen[0] in ("complete", "failed"):
                settled.set()

    watch = backend.firestore_client.collection("characters").document(CHARACTER).on_snapshot(on_snapshot)
    try:
        source = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/hero.png", subject_on_white(), "image/png")
        assert backend.deliver(source) == 200
        assert settled.wait(30)
    finally:
        watch.unsubscribe()

    assert statuses == [(status, status) for status in ("removing-background", "finalizing", "complete")]


def test_the_variants_are_cut_out_and_the_manifest_records_it(backend: Backend) -> None:
    source = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/hero.png", subject_on_white(), "image/png")

    assert backend.deliver(source) == 200

    record = showcase(backend)
    assert record["status"] == "complete"
    cutout = record["cutout"]
    assert (cutout["applied"], cutout["model"]) == (True, f"isnet:{hashlib.sha256(MODEL).hexdigest()[:12]}")
    assert cutout["coverage"] == pytest.approx(3.14159 / 16, abs=0.01)  # a disc of half the width and height
    for variant in record["variants"].values():
        for entry in variant["formats"].values():
            image = Image.open(io.BytesIO(backend.download_url(entry["url"]).content)).convert("RGBA")
            width, height = image.size
            assert image.getpixel((2, 2))[3] == 0, entry["path"]  # the white background is gone
            *colour, alpha = image.getpixel((width // 2, height // 2))
            assert alpha == 255 and max(abs(a - b) for a, b in zip(colour, SUBJECT, strict=True)) <= 4, entry["path"]


def test_a_wrong_checksum_model_is_retried_with_nothing_written(backend: Backend) -> None:
    source = backend.upload(f"wrong-uploads/{OWNER}/{CHARACTER}/hero.png", subject_on_white(640, 480), "image/png")
    before = everything(backend)

    assert backend.deliver(source, event_id="event-wrong-model") == 500

    assert everything(backend) == before
    [summary] = backend.summary_lines("event-wrong-model")
    assert (summary["severity"], summary["outcome"], summary["stage"]) == ("ERROR", "retry", "model")
    assert "ModelUnusable" in summary["error"] and "sha256" in summary["error"]
    assert f"gs://demo-image-pipeline.appspot.com/{MODEL_OBJECT}" in summary["error"]


def test_a_redelivery_of_a_completed_cutout_changes_nothing(backend: Backend) -> None:
    source = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/hero.png", subject_on_white(800, 600), "image/png")
    assert backend.deliver(source, event_id="event-1") == 200
    before = everything(backend)

    assert backend.deliver(source, event_id="event-1") == 200

    assert everything(backend) == before
    [_, duplicate] = backend.summary_lines("event-1")
    assert duplicate["outcome"] == "duplicate"


def test_an_older_upload_delivered_late_never_replaces_the_newer_cutout(backend: Backend) -> None:
    older = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/first.png", subject_on_white(800, 600), "image/png")
    newer = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/second.png", subject_on_white(600, 800), "image/png")
    assert backend.deliver(newer) == 200
    before = everything(backend)

    assert backend.deliver(older, event_id="event-late") == 200

    assert everything(backend) == before
    assert showcase(backend)["source"]["path"] == newer["name"]
    [summary] = backend.summary_lines("event-late")
    assert summary["outcome"] == "superseded"


def test_concurrent_duplicates_make_one_set_of_cut_out_outputs(backend: Backend) -> None:
    source = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/hero.png", subject_on_white(1200, 900), "image/png")

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: backend.deliver_as_eventarc(source, "event-1"), range(4)))

    assert statuses == [200] * 4
    record = showcase(backend)
    assert record["status"] == "complete" and record["cutout"]["applied"] is True
    stored = backend.objects(OUTPUTS)
    assert len(stored) == 2 * 2  # two variants, two formats
    for variant in record["variants"].values():
        for entry in variant["formats"].values():
            assert entry["url"].endswith(f"&token={token_of(stored[entry['path']])}")
