"""Acceptance: Eventarc-style deliveries to the function served by functions-framework.

On fake-gcs-server and the Firestore emulator.
"""

from __future__ import annotations

import io
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image

from tests.backend import BUCKET, Backend, photo, png_bomb, token_of

OWNER = "user-1"
CHARACTER = "char-1"
SOURCE = f"raw-uploads/{OWNER}/{CHARACTER}/portrait.jpg"
OUTPUTS = f"showcase-images/{OWNER}/{CHARACTER}/"
EXPECTED_SIZES = {"thumb": (256, 192), "medium": (1024, 768), "large": (1600, 1200)}


def visuals(backend: Backend) -> dict[str, Any]:
    """The character's `visuals` map."""
    return (backend.document(CHARACTER) or {}).get("visuals", {})


def output_generations(backend: Backend) -> dict[str, int]:
    """Each output's name and stored generation: a rewrite would change the generation."""
    return {name: blob.generation for name, blob in backend.objects(OUTPUTS).items()}


def test_happy_path_writes_variants_and_the_document_the_app_reads(backend: Backend) -> None:
    backend.seed_character(CHARACTER, OWNER, name="Aria")
    source = backend.upload(SOURCE, photo(1600, 1200), metadata={"uploadedBy": "ios-app", "secret": "x"})

    assert backend.deliver(source) == 200

    document = backend.document(CHARACTER)
    showcase = document["visuals"]["showcase"]
    assert document["name"] == "Aria"
    assert document["visuals"]["showcaseProcessingStatus"] == "complete"
    assert document["visuals"]["isShowcaseProcessed"] is True
    assert document["visuals"]["showcaseImageUrl"] == showcase["variants"]["large"]["url"]
    assert showcase["source"] == {
        "path": SOURCE,
        "generation": source["generation"],
        "contentType": "image/jpeg",
        "bytes": int(source["size"]),
        "format": "JPEG",
        "width": 1600,
        "height": 1200,
    }
    assert showcase["error"] is None
    assert set(showcase["placeholder"]) == {"dominantColor", "blurhash", "thumbhash"}
    assert showcase["updatedAt"] is not None
    stored = backend.objects(OUTPUTS)
    assert sorted(stored) == sorted(variant["path"] for variant in showcase["variants"].values())
    for name, variant in showcase["variants"].items():
        blob = stored[variant["path"]]
        assert source["generation"] in variant["path"] and name in variant["path"]
        assert variant["url"] == (
            f"{backend.storage_url}/storage/v1/b/{BUCKET}/o/"
            f"{variant['path'].replace('/', '%2F')}?alt=media&token={token_of(blob)}"
        )
        assert blob.metadata == {"firebaseStorageDownloadTokens": token_of(blob), "resizedImage": "true"}
        assert blob.cache_control == "public, max-age=31536000, immutable"
        assert blob.content_type == variant["contentType"] == "image/webp"
        body = backend.download_url(variant["url"]).content
        assert len(body) == variant["bytes"] == blob.size
        image = Image.open(io.BytesIO(body))
        assert (image.format, image.size) == ("WEBP", EXPECTED_SIZES[name])
        assert (variant["width"], variant["height"]) == EXPECTED_SIZES[name]


@pytest.mark.parametrize("same_event_id", [True, False], ids=["redelivery", "second-event"])
def test_sequential_duplicates_change_nothing(backend: Backend, same_event_id: bool) -> None:
    backend.seed_character(CHARACTER, OWNER)
    source = backend.upload(SOURCE, photo(800, 600))
    assert backend.deliver(source, event_id="event-1") == 200
    before = (backend.document(CHARACTER), output_generations(backend))

    assert backend.deliver(source, event_id="event-1" if same_event_id else "event-2") == 200

    assert (backend.document(CHARACTER), output_generations(backend)) == before


def deliver_apart(backend: Backend, source: dict, delay_s: float) -> int:
    """One duplicate of event-1, sent `delay_s` after the first and redelivered as Eventarc would."""
    time.sleep(delay_s)
    return backend.deliver_as_eventarc(source, "event-1")


def test_concurrent_duplicates_make_one_set_of_outputs(backend: Backend) -> None:
    backend.seed_character(CHARACTER, OWNER)
    source = backend.upload(SOURCE, photo(1200, 900))

    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(lambda index: deliver_apart(backend, source, 0.15 * index), range(5)))

    assert statuses == [200] * 5
    stored = backend.objects(OUTPUTS)
    showcase = visuals(backend)["showcase"]
    assert visuals(backend)["showcaseProcessingStatus"] == "complete"
    assert len(stored) == 3
    for variant in showcase["variants"].values():
        assert variant["url"].endswith(f"token={token_of(stored[variant['path']])}")


def test_an_older_generation_delivered_after_a_newer_one_changes_nothing(backend: Backend) -> None:
    backend.seed_character(CHARACTER, OWNER)
    older = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/first.jpg", photo(640, 480))
    newer = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/second.jpg", photo(800, 600))
    assert backend.deliver(newer) == 200
    before = (backend.document(CHARACTER), output_generations(backend))

    assert backend.deliver(older) == 200

    assert (backend.document(CHARACTER), output_generations(backend)) == before
    assert visuals(backend)["showcase"]["source"]["generation"] == newer["generation"]


def test_a_missing_document_is_retried_until_the_app_creates_it(backend: Backend) -> None:
    source = backend.upload(SOURCE, photo(640, 480))

    assert backend.deliver(source) == 500
    assert backend.objects(OUTPUTS) == {}

    backend.seed_character(CHARACTER, OWNER)
    assert backend.deliver(source) == 200
    assert visuals(backend)["showcaseProcessingStatus"] == "complete"


def test_a_missing_document_past_the_max_event_age_is_acknowledged(backend: Backend) -> None:
    source = backend.upload(SOURCE, photo(640, 480))

    assert backend.deliver(source, age=timedelta(minutes=11)) == 200

    assert backend.document(CHARACTER) is None
    assert backend.objects(OUTPUTS) == {}


def test_an_upload_by_someone_else_writes_nothing(backend: Backend) -> None:
    backend.seed_character(CHARACTER, "the-real-owner", visuals={"showcaseImageUrl": "https://kept"})
    before = backend.document(CHARACTER)
    source = backend.upload(SOURCE, photo(640, 480))
    event_id = uuid.uuid4().hex

    assert backend.deliver(source, event_id=event_id) == 200

    assert backend.document(CHARACTER) == before
    assert backend.objects(OUTPUTS) == {}
    assert [line["severity"] for line in backend.summary_lines(event_id)] == ["WARNING"]


def test_an_object_deleted_before_processing_is_acknowledged(backend: Backend) -> None:
    backend.seed_character(CHARACTER, OWNER)
    source = backend.upload(SOURCE, photo(640, 480))
    backend.bucket.blob(SOURCE).delete()

    assert backend.deliver(source) == 200

    assert backend.objects(OUTPUTS) == {}
    assert visuals(backend)["showcaseProcessingStatus"] == "failed"
    assert visuals(backend)["showcase"]["error"]["code"] == "source_gone"


@pytest.mark.parametrize(
    ("data", "content_type", "encoding", "code"),
    [
        pytest.param(b"just some text, not pixels", "image/jpeg", None, "unsupported_format", id="non-image"),
        pytest.param(png_bomb(30000, 30000), "image/png", None, "too_large", id="decompression-bomb"),
        pytest.param(photo(64, 48), "image/jpeg", "gzip", "unsupported_encoding", id="gzip-encoded"),
    ],
)
def test_bad_uploads_end_failed_with_the_code(
    backend: Backend, data: bytes, content_type: str, encoding, code: str
) -> None:
    backend.seed_character(CHARACTER, OWNER, visuals={"showcaseImageUrl": "https://old"})
    source = backend.upload(SOURCE, data, content_type=content_type, content_encoding=encoding)

    assert backend.deliver(source) == 200

    assert visuals(backend)["showcaseProcessingStatus"] == "failed"
    assert visuals(backend)["isShowcaseProcessed"] is False
    assert visuals(backend)["showcaseImageUrl"] is None
    assert visuals(backend)["showcase"]["error"]["code"] == code
    assert backend.objects(OUTPUTS) == {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(f"showcase-images/{OWNER}/{CHARACTER}/portrait-1-large.webp", id="our-own-output"),
        pytest.param(f"avatars/{OWNER}/{CHARACTER}/portrait.jpg", id="other-prefix"),
        pytest.param(f"raw-uploads/{OWNER}/../{CHARACTER}/portrait.jpg", id="dot-dot"),
        pytest.param(f"raw-uploads/{OWNER}/{CHARACTER}/extra/portrait.jpg", id="extra-segment"),
        pytest.param(f"raw-uploads/{OWNER}/{CHARACTER}/", id="folder-placeholder"),
    ],
)
def test_objects_that_are_not_source_uploads_are_skipped(backend: Backend, name: str) -> None:
    backend.seed_character(CHARACTER, OWNER)
    source = backend.upload(SOURCE, photo(64, 48))
    event_id = uuid.uuid4().hex

    assert backend.deliver({**source, "name": name}, event_id=event_id) == 200

    assert backend.document(CHARACTER) == {"meta": {"userId": OWNER}}
    assert backend.objects(OUTPUTS) == {}
    [summary] = backend.summary_lines(event_id)
    assert (summary["severity"], summary["outcome"], summary["object"]) == ("INFO", "skipped", name)


def test_a_storage_outage_answers_500_then_a_redelivery_completes(backend: Backend, storage_proxy) -> None:
    backend.seed_character(CHARACTER, OWNER)
    source = backend.upload(SOURCE, photo(800, 600))
    event_id = uuid.uuid4().hex

    storage_proxy.failing.set()
    assert backend.deliver(source, event_id=event_id) == 500
    assert visuals(backend)["showcaseProcessingStatus"] == "finalizing"
    storage_proxy.failing.clear()
    assert backend.deliver(source, event_id=event_id) == 200

    assert visuals(backend)["showcaseProcessingStatus"] == "complete"
    assert len(backend.objects(OUTPUTS)) == 3
    summaries = backend.summary_lines(event_id)
    assert [(line["severity"], line["outcome"], line["stage"]) for line in summaries] == [
        ("WARNING", "retry", "download"),
        ("INFO", "complete", "record"),
    ]
    assert all(line["duration_ms"] >= 0 and line["generation"] == source["generation"] for line in summaries)
