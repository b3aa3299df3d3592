"""The use case on in-memory ports: every delivery case ends in the right document state and outputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from image_pipeline.errors import DocumentNotYetCreated, TransientError
from image_pipeline.ports import Outcome
from image_pipeline.routes import DeleteOriginal
from image_pipeline.settings import Settings
from image_pipeline.uploads import Upload, classify
from image_pipeline.usecase import Dependencies, Trace, handle_upload
from tests.fakes import COMMIT_TIME, NOT_AN_IMAGE, MemoryDocuments, MemoryObjects, fake_make_variants

BUCKET = "app.appspot.com"
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SOURCE = "raw-uploads/user-1/char-1/portrait.jpg"
DOCUMENT = "characters/char-1"
SETTINGS = Settings()


def deleting(mode: DeleteOriginal) -> Settings:
    """The built-in route with DELETE_ORIGINAL set to `mode`."""
    return Settings.from_env({"DELETE_ORIGINAL": mode.value})


class World:
    """Fakes plus one uploaded source object and its event."""

    def __init__(
        self, document: dict[str, Any] | None = None, data: bytes = b"jpeg bytes", settings: Settings = SETTINGS
    ):
        self.objects = MemoryObjects()
        self.documents = MemoryDocuments({DOCUMENT: document} if document is not None else {})
        self.settings = settings
        self.generation = self.objects.put(BUCKET, SOURCE, data)
        self.data = data

    def upload(self, age: timedelta = timedelta(seconds=5), **overrides: Any) -> Upload:
        """The event for the stored source, `age` old."""
        resource = {"bucket": BUCKET, "name": SOURCE, "generation": str(self.generation), "size": str(len(self.data)),
                    "contentType": "image/jpeg", **overrides}  # fmt: skip
        upload = classify("event-1", (NOW - age).isoformat(), resource, self.settings.routes)
        assert isinstance(upload, Upload)
        return upload

    def run(self, upload: Upload) -> Outcome:
        """Handle the upload as the function would."""
        deps = Dependencies(self.objects, self.documents, fake_make_variants, lambda: NOW)
        return handle_upload(upload, self.settings.policy, deps, Trace())

    @property
    def document(self) -> dict[str, Any]:
        return self.documents.documents[DOCUMENT]

    @property
    def visuals(self) -> dict[str, Any]:
        return self.document.get("visuals", {})

    def outputs(self) -> list[str]:
        return self.objects.names("showcase-images/")


def owned(**visuals: Any) -> dict[str, Any]:
    """A character document owned by user-1."""
    return {"meta": {"userId": "user-1"}, **({"visuals": visuals} if visuals else {})}


def recorded(generation: int, status: str) -> dict[str, Any]:
    """Visuals holding a result for `generation`."""
    return {"showcaseProcessingStatus": status, "showcase": {"source": {"generation": str(generation)}}}


def test_happy_path_records_every_field_and_writes_the_variants() -> None:
    world = World({**owned(backgroundUrl="https://bg"), "name": "Aria"})

    assert world.run(world.upload()) is Outcome.COMPLETE

    visuals = world.visuals
    showcase = visuals["showcase"]
    assert visuals["showcaseProcessingStatus"] == "complete"
    assert visuals["isShowcaseProcessed"] is True
    assert visuals["showcaseImageUrl"] == showcase["variants"]["large"]["url"]
    assert showcase["source"] == {
        "path": SOURCE,
        "generation": str(world.generation),
        "contentType": "image/jpeg",
        "bytes": len(world.data),
        "format": "JPEG",
        "width": 4000,
        "height": 3000,
    }
    assert showcase["error"] is None
    assert showcase["updatedAt"] == COMMIT_TIME
    assert showcase["placeholder"] == {"dominantColor": "#336699", "blurhash": "LKO2?U%2Tw=w]~RBVZRi};RPxuwH"}
    assert sorted(showcase["variants"]) == ["large", "medium", "thumb"]
    for name, variant in showcase["variants"].items():
        stored = world.objects.objects[(BUCKET, variant["path"])]
        assert variant["path"] == f"showcase-images/user-1/char-1/portrait-{world.generation}-{name}.webp"
        assert variant["url"].endswith(f"?alt=media&token={stored.token}")
        assert stored.cache_control == "public, max-age=31536000, immutable"
        assert (variant["contentType"], variant["bytes"]) == ("image/webp", len(stored.data))
    assert (world.document["name"], visuals["backgroundUrl"]) == ("Aria", "https://bg")
    assert (BUCKET, SOURCE) in world.objects.objects


@pytest.mark.parametrize(
    ("document", "age", "outcome"),
    [
        pytest.param({"meta": {"userId": "someone-else"}}, 5, Outcome.NOT_OWNER, id="not-owner"),
        pytest.param({"meta": {}}, 5, Outcome.NOT_OWNER, id="no-owner-field"),
        pytest.param(None, 601, Outcome.DOCUMENT_MISSING, id="missing-past-max-age"),
    ],
)
def test_refused_events_write_nothing_and_make_no_outputs(document, age: int, outcome: Outcome) -> None:
    world = World(document)
    before = dict(world.documents.documents)

    assert world.run(world.upload(timedelta(seconds=age))) is outcome

    assert world.documents.documents == before
    assert (world.documents.writes, world.objects.downloads, world.outputs()) == (0, 0, [])


@pytest.mark.parametrize(
    ("offset", "status", "outcome"),
    [
        pytest.param(0, "complete", Outcome.DUPLICATE, id="duplicate-of-complete"),
        pytest.param(0, "failed", Outcome.DUPLICATE, id="duplicate-of-failed"),
        pytest.param(1, "finalizing", Outcome.SUPERSEDED, id="newer-in-progress"),
        pytest.param(1, "complete", Outcome.SUPERSEDED, id="newer-complete"),
    ],
)
def test_settled_or_newer_results_are_left_alone(offset: int, status: str, outcome: Outcome) -> None:
    world = World(owned())
    world.document["visuals"] = recorded(world.generation + offset, status)
    before = world.visuals

    assert world.run(world.upload()) is outcome

    assert world.visuals == before
    assert (world.documents.writes, world.objects.downloads, world.outputs()) == (0, 0, [])


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        pytest.param(0, "finalizing", id="same-generation-interrupted"),
        pytest.param(-1, "complete", id="older-complete"),
        pytest.param(-1, "failed", id="older-failed"),
        pytest.param(None, "upscaling", id="app-status-without-record"),
    ],
)
def test_interrupted_or_older_results_are_completed_for_this_generation(offset: int | None, status: str) -> None:
    world = World(owned())
    no_record = {"showcaseProcessingStatus": status}
    world.document["visuals"] = no_record if offset is None else recorded(world.generation + offset, status)

    assert world.run(world.upload()) is Outcome.COMPLETE

    assert world.visuals["showcaseProcessingStatus"] == "complete"
    assert world.visuals["showcase"]["source"]["generation"] == str(world.generation)


def test_generations_compare_as_numbers_not_strings() -> None:
    world = World(owned())
    world.document["visuals"] = recorded(9, "complete")  # "9" > "17..." as strings

    assert world.run(world.upload()) is Outcome.COMPLETE


@pytest.mark.parametrize(
    ("overrides", "data", "code"),
    [
        pytest.param({"contentEncoding": "gzip"}, b"jpeg bytes", "unsupported_encoding", id="gzip"),
        pytest.param(
            {"size": str(SETTINGS.limits.max_input_bytes + 1)}, b"jpeg bytes", "too_large", id="size-over-limit"
        ),
        pytest.param({}, NOT_AN_IMAGE, "unsupported_format", id="rejected-by-core"),
    ],
)
def test_permanent_problems_record_failed_with_the_code(overrides: dict[str, str], data: bytes, code: str) -> None:
    world = World(owned(showcaseImageUrl="https://old"), data=data)

    assert world.run(world.upload(**overrides)) is Outcome.FAILED

    assert world.visuals["showcaseProcessingStatus"] == "failed"
    assert world.visuals["isShowcaseProcessed"] is False
    assert world.visuals["showcaseImageUrl"] is None
    assert world.visuals["showcase"]["error"]["code"] == code
    assert world.visuals["showcase"]["variants"] == {}
    assert world.outputs() == []


@pytest.mark.parametrize(("overrides", "downloads"), [({"contentEncoding": "gzip"}, 0), ({}, 1)])
def test_event_level_problems_are_caught_before_downloading(overrides: dict[str, str], downloads: int) -> None:
    world = World(owned())

    world.run(world.upload(**overrides))

    assert world.objects.downloads == downloads


def test_a_source_gone_before_download_ends_failed_not_finalizing() -> None:
    world = World(owned())
    upload = world.upload()
    del world.objects.objects[(BUCKET, SOURCE)]

    assert world.run(upload) is Outcome.FAILED

    assert world.visuals["showcase"]["error"]["code"] == "source_gone"
    assert world.outputs() == []


def test_missing_document_is_retried_while_the_event_is_young() -> None:
    world = World(None)

    with pytest.raises(DocumentNotYetCreated):
        world.run(world.upload(timedelta(seconds=599)))

    assert world.objects.downloads == 0


def test_transient_failure_raises_then_a_redelivery_completes() -> None:
    world = World(owned())
    world.objects.outage = True

    with pytest.raises(TransientError):
        world.run(world.upload())
    assert world.visuals["showcaseProcessingStatus"] == "finalizing"

    world.objects.outage = False
    assert world.run(world.upload()) is Outcome.COMPLETE
    assert world.visuals["showcaseProcessingStatus"] == "complete"


def test_transient_failure_past_the_retry_window_records_retries_exhausted() -> None:
    world = World(owned())
    world.objects.outage = True

    assert world.run(world.upload(timedelta(seconds=SETTINGS.policy.retry_window_s + 1))) is Outcome.FAILED

    assert world.visuals["showcaseProcessingStatus"] == "failed"
    assert world.visuals["showcase"]["error"]["code"] == "retries_exhausted"


def test_a_retry_reuses_outputs_written_by_the_interrupted_attempt() -> None:
    world = World(owned())
    world.run(world.upload())
    first = world.visuals["showcase"]["variants"]
    # As if the attempt died before recording: both the manifest's status and its mirror still say finalizing.
    world.document["visuals"]["showcaseProcessingStatus"] = "finalizing"
    world.document["visuals"]["showcase"]["status"] = "finalizing"

    assert world.run(world.upload()) is Outcome.COMPLETE

    assert world.visuals["showcase"]["variants"] == first
    assert len(world.outputs()) == 3


@pytest.mark.parametrize(("mode", "kept"), [(DeleteOriginal.NEVER, True), (DeleteOriginal.ON_SUCCESS, False)])
def test_the_original_is_deleted_only_when_configured(mode: DeleteOriginal, kept: bool) -> None:
    world = World(owned(), settings=deleting(mode))

    world.run(world.upload())

    assert ((BUCKET, SOURCE) in world.objects.objects) is kept


def test_failed_uploads_never_delete_the_original() -> None:
    world = World(owned(), data=NOT_AN_IMAGE, settings=deleting(DeleteOriginal.ON_SUCCESS))

    world.run(world.upload())

    assert (BUCKET, SOURCE) in world.objects.objects
