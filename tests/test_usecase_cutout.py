"""The use case on a cutout route, with in-memory ports and a stand-in core: the statuses CharaForge's UI shows
(removing-background, finalizing, complete), the manifest's `cutout` record, and a model that cannot be used, which
is retried with nothing written until the retry window ends."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from image_pipeline.errors import ModelUnusable
from image_pipeline.model_files import LoadedCutout
from image_pipeline.options import ImagingOptions
from image_pipeline.ports import Decide, Decision, Outcome
from image_pipeline.results import ProcessedImage
from image_pipeline.routes_file import parse_routes
from image_pipeline.settings import Settings
from image_pipeline.uploads import Upload, classify
from image_pipeline.usecase import Cutouts, Dependencies, Trace, handle_upload
from tests.fakes import (
    FAKE_COVERAGE,
    NO_SUBJECT,
    NOT_AN_IMAGE,
    FakeModels,
    MemoryDocuments,
    MemoryObjects,
    fake_cutout_variants,
    fake_make_variants,
)

BUCKET = "app.appspot.com"
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SHA = "feedface" * 8
MIRROR = {"status": "visuals.showcaseProcessingStatus", "url": "visuals.showcaseImageUrl",
          "ready": "visuals.isShowcaseProcessed"}  # fmt: skip
SHOWCASE = {
    "name": "showcase",
    "match": "raw-uploads/{uid}/{characterId}/{file}",
    "document": "characters/{characterId}",
    "field": "visuals.showcase",
    "require": {"meta.userId": "{uid}"},
    "owner": "{uid}",
    "output": "showcase-images/{uid}/{characterId}/",
    "mirror": MIRROR,
    "variants": {"thumb": 256, "large": 2048},
    "cutout": {"family": "isnet", "uri": "gs://{bucket}/models/isnet-anime.onnx", "sha256": SHA},
}
PLAIN = {
    **{key: value for key, value in SHOWCASE.items() if key != "cutout"},
    "name": "plain",
    "match": "plain-uploads/{uid}/{characterId}/{file}",
    "output": "plain-images/{uid}/{characterId}/",
}
SETTINGS = dataclasses.replace(Settings(), routes=parse_routes({"route": [SHOWCASE, PLAIN]}, ImagingOptions()).routes)
DOCUMENT = "characters/c-1"
OWNED = {"meta": {"userId": "u-1"}}


class RecordingDocuments(MemoryDocuments):
    """MemoryDocuments that keeps the document as it was after every write, to read the statuses in order."""

    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        super().__init__(documents)
        self.history: list[dict[str, Any]] = []

    def transact(self, path: str, decide: Decide) -> Decision:
        decision = super().transact(path, decide)
        if decision.writes:
            self.history.append(self.get(path) or {})
        return decision


class World:
    def __init__(self, models: FakeModels | None = None, make: Callable[..., ProcessedImage] = fake_cutout_variants):
        self.objects = MemoryObjects()
        self.documents = RecordingDocuments({DOCUMENT: dict(OWNED)})
        self.models = models or FakeModels()
        self.make = make

    def upload(self, name: str = "raw-uploads/u-1/c-1/me.png", data: bytes = b"image bytes",
               age: timedelta = timedelta(seconds=5), size: int | None = None) -> Upload:  # fmt: skip
        generation = self.objects.put(BUCKET, name, data)
        resource = {"bucket": BUCKET, "name": name, "generation": str(generation), "size": str(size or len(data))}
        upload = classify("event-1", (NOW - age).isoformat(), resource, SETTINGS.routes)
        assert isinstance(upload, Upload)
        return upload

    def run(self, upload: Upload) -> Outcome:
        cutouts = Cutouts(self.models.load, self.make)
        deps = Dependencies(self.objects, self.documents, fake_make_variants, lambda: NOW, cutouts)
        return handle_upload(upload, SETTINGS.policy, deps, Trace())

    def visuals(self) -> dict[str, Any]:
        return self.documents.documents[DOCUMENT]["visuals"]

    def statuses(self) -> list[tuple[str, str]]:
        """(manifest status, mirrored status) after each write."""
        return [(doc["visuals"]["showcase"]["status"], doc["visuals"]["showcaseProcessingStatus"])
                for doc in self.documents.history]  # fmt: skip


def test_a_cutout_route_shows_removing_background_then_finalizing_then_complete() -> None:
    world = World()

    assert world.run(world.upload()) is Outcome.COMPLETE

    assert world.statuses() == [
        ("removing-background", "removing-background"),
        ("finalizing", "finalizing"),
        ("complete", "complete"),
    ]
    claimed, finalizing, _ = world.documents.history
    assert claimed["visuals"]["isShowcaseProcessed"] is False
    assert finalizing["visuals"]["showcase"]["cutout"] is None  # null until complete
    assert world.visuals()["isShowcaseProcessed"] is True


def test_the_manifest_records_the_applied_cutout() -> None:
    world = World()

    world.run(world.upload())

    assert world.visuals()["showcase"]["cutout"] == {
        "applied": True,
        "model": f"isnet:{SHA[:12]}",
        "coverage": FAKE_COVERAGE,
    }


def test_no_subject_is_recorded_as_not_applied() -> None:
    world = World()

    assert world.run(world.upload(data=NO_SUBJECT)) is Outcome.COMPLETE

    assert world.visuals()["showcase"]["cutout"] == {"applied": False, "reason": "no_subject"}


def test_a_route_without_a_cutout_has_no_cutout_key_and_never_removes_the_background() -> None:
    world = World()

    assert world.run(world.upload("plain-uploads/u-1/c-1/me.png")) is Outcome.COMPLETE

    assert [status for status, _ in world.statuses()] == ["finalizing", "complete"]
    assert all("cutout" not in doc["visuals"]["showcase"] for doc in world.documents.history)
    assert world.models.loads == 0


def test_a_rejected_image_records_failed_with_a_null_cutout() -> None:
    world = World()

    assert world.run(world.upload(data=NOT_AN_IMAGE)) is Outcome.FAILED

    showcase = world.visuals()["showcase"]
    assert (showcase["status"], showcase["cutout"], showcase["error"]["code"]) == ("failed", None, "unsupported_format")
    assert [status for status, _ in world.statuses()] == ["removing-background", "failed"]


def test_an_event_level_problem_fails_without_loading_the_model() -> None:
    world = World()

    outcome = world.run(world.upload(size=SETTINGS.limits.max_input_bytes + 1))

    assert outcome is Outcome.FAILED
    assert world.models.loads == 0
    assert world.visuals()["showcase"]["cutout"] is None


@pytest.mark.parametrize("problem", ["no such object", "sha256 is 00ab..., expected feedface...", "not an ONNX model"])
def test_an_unusable_model_raises_before_anything_is_written(problem: str) -> None:
    world = World(FakeModels(problem=problem))
    upload = world.upload()
    before = world.documents.get(DOCUMENT)

    with pytest.raises(ModelUnusable, match=problem) as raised:
        world.run(upload)

    assert "gs://app.appspot.com/models/isnet-anime.onnx" in str(raised.value)
    assert world.documents.writes == 0 and world.documents.get(DOCUMENT) == before
    assert world.objects.downloads == 0 and world.objects.creates == 0


def test_an_unusable_model_past_the_retry_window_records_retries_exhausted() -> None:
    world = World(FakeModels(problem="no such object"))

    outcome = world.run(world.upload(age=timedelta(seconds=SETTINGS.policy.retry_window_s + 1)))

    assert outcome is Outcome.FAILED
    showcase = world.visuals()["showcase"]
    assert showcase["status"] == "failed" and showcase["cutout"] is None
    assert showcase["error"]["code"] == "retries_exhausted"
    assert "ModelUnusable" in showcase["error"]["message"] and "no such object" in showcase["error"]["message"]


def test_a_duplicate_of_a_completed_cutout_changes_nothing() -> None:
    world = World()
    upload = world.upload()
    world.run(upload)
    settled = world.documents.get(DOCUMENT)

    assert world.run(upload) is Outcome.DUPLICATE
    assert world.documents.get(DOCUMENT) == settled


def test_an_older_generation_never_regresses_a_newer_result() -> None:
    world = World()
    older = world.upload()
    newer = world.upload()
    world.run(newer)
    settled = world.documents.get(DOCUMENT)

    assert world.run(older) is Outcome.SUPERSEDED
    assert world.documents.get(DOCUMENT) == settled


def test_a_newer_generation_claiming_during_the_cutout_is_neither_set_to_finalizing_nor_overwritten() -> None:
    world = World()
    older = world.upload("raw-uploads/u-1/c-1/first.png")
    newer = world.upload("raw-uploads/u-1/c-1/second.png")

    def newer_claims_first(data: bytes, options: ImagingOptions, cutout: LoadedCutout, done: Callable[[], None]):
        # The newer upload's event claims the document while this one is still removing the background.
        world.documents.transact(DOCUMENT, lambda document: Decision(writes=_claim_of(newer)))
        return fake_cutout_variants(data, options, cutout, done)

    world.make = newer_claims_first
    assert world.run(older) is Outcome.SUPERSEDED

    showcase = world.visuals()["showcase"]
    assert (showcase["status"], showcase["source"]["generation"]) == ("removing-background", str(newer.generation))


def test_a_retry_after_finalizing_completes_the_same_generation() -> None:
    world = World()
    upload = world.upload()

    def crash_after_the_mask(data: bytes, options: ImagingOptions, cutout: LoadedCutout, done: Callable[[], None]):
        done()
        raise ConnectionError("the instance lost its network after the mask (injected)")

    world.make = crash_after_the_mask
    with pytest.raises(ConnectionError):
        world.run(upload)
    world.make = fake_cutout_variants

    assert world.run(upload) is Outcome.COMPLETE
    assert [status for status, _ in world.statuses()] == [
        "removing-background", "finalizing", "finalizing", "complete"
    ]  # fmt: skip


def _claim_of(upload: Upload) -> dict[str, Any]:
    from image_pipeline.manifest import claim_writes

    return claim_writes(upload)
