"""An extension route's use case on the in-memory ports: what it writes, deletes, copies and publishes.

The behaviour is the Resize Images extension's (outputs, metadata, failed copies, deletes, events), with the
differences the migration guide lists: retries, deletes only once the outcome is final, redelivery changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from image_pipeline.errors import TransientError
from image_pipeline.extension.resize import EVENTS_MARK, ExtensionTrace, Finalize, handle_finalize
from image_pipeline.extension.route import ExtensionRoute
from image_pipeline.options import ImagingOptions
from image_pipeline.policy import Policy
from image_pipeline.ports import SOURCE_GENERATION_METADATA_KEY, TOKEN_METADATA_KEY, ObjectMetadata, Outcome
from image_pipeline.routes_file import parse_routes
from image_pipeline.usecase import Dependencies
from tests.fakes import NOT_AN_IMAGE, MemoryDocuments, MemoryObjects, MemoryPublisher, fake_make_variants

BUCKET = "app.appspot.com"
CHANNEL = "projects/p/locations/us-central1/channels/firebase"
# Now: an event time ahead of the real clock counts as now (uploads.event_moment), so the fake clock starts here.
UPLOADED = datetime.now(UTC)
ORIGINAL = ObjectMetadata(
    content_type="image/jpeg",
    cache_control="public, max-age=60",
    content_disposition="inline; filename*=utf-8''a.jpg",
    custom={TOKEN_METADATA_KEY: "T1", "owner": "u1"},
)


def extension_route(**params: str) -> ExtensionRoute:
    table = {"name": "resize", "extension": "storage-resize-images", "EVENTARC_CHANNEL": CHANNEL, **params}
    (route,) = parse_routes({"route": [table]}, ImagingOptions(), project="p").extensions
    return route


class World:
    """The fakes one test drives, and a clock that starts at the upload's time."""

    def __init__(self) -> None:
        self.objects = MemoryObjects()
        self.publisher = MemoryPublisher()
        self.now = UPLOADED
        self.deps = Dependencies(
            objects=self.objects,
            documents=MemoryDocuments(),
            make_variants=fake_make_variants,
            now=lambda: self.now,
            events=self.publisher,
        )

    def upload(self, name: str, data: bytes = b"jpeg bytes", metadata: ObjectMetadata = ORIGINAL) -> Finalize:
        resource = self.objects.upload(BUCKET, name, data, metadata)
        return Finalize(f"event-{resource['generation']}", UPLOADED.isoformat(), resource)

    def handle(self, route: ExtensionRoute, finalize: Finalize, window_s: int = 3600) -> Outcome:
        return handle_finalize(route, finalize, Policy(retry_window_s=window_s), self.deps, ExtensionTrace())

    def stored(self, name: str) -> Any:
        return self.objects.objects.get((BUCKET, name))

    def custom(self, name: str) -> dict[str, str]:
        return dict(self.stored(name).metadata.custom)


@pytest.fixture
def world() -> World:
    return World()


def test_every_type_at_every_size_is_written_with_the_extensions_names_and_metadata(world: World) -> None:
    route = extension_route(IMG_SIZES="200x200,400x300", IMAGE_TYPE="webp,false", RESIZED_IMAGES_PATH="thumbs",
                            CACHE_CONTROL_HEADER="max-age=86400")  # fmt: skip
    finalize = world.upload("images/a.jpg")

    assert world.handle(route, finalize) is Outcome.COMPLETE

    outputs = {
        "images/thumbs/a_200x200.webp": "image/webp",
        "images/thumbs/a_400x300.webp": "image/webp",
        "images/thumbs/a_200x200.jpg": "image/jpeg",
        "images/thumbs/a_400x300.jpg": "image/jpeg",
    }
    assert world.objects.names("images/thumbs/") == sorted(outputs)
    tokens = set()
    for name, content_type in outputs.items():
        stored = world.stored(name)
        custom = world.custom(name)
        assert (stored.metadata.content_type, stored.metadata.cache_control) == (content_type, "max-age=86400")
        assert stored.metadata.content_disposition == f"inline; filename*=utf-8''{name.rsplit('/', 1)[1]}"
        assert (custom["owner"], custom["resizedImage"], custom[SOURCE_GENERATION_METADATA_KEY]) == (
            "u1",
            "true",
            str(finalize.generation),
        )
        tokens.add(custom[TOKEN_METADATA_KEY])
    assert len(tokens) == 4 and "T1" not in tokens
    assert world.stored("images/a.jpg") is not None


def test_events_are_the_extensions_in_its_order(world: World) -> None:
    route = extension_route(IMG_SIZES="200x200", IMAGE_TYPE="webp")
    finalize = world.upload("images/a.jpg")

    world.handle(route, finalize)

    assert world.publisher.types() == ["onStart", "onStartResize", "onSuccess", "onCompletion"]
    success = next(event for _, event in world.publisher.published if event["type"].endswith("onSuccess"))
    assert success["attributes"]["subject"] == {"ceString": "images/a.jpg"}
    assert '"outputs":[{"status":"fulfilled","value":{"size":"200x200","outputFilePath":"images/a_200x200.webp",' \
           '"success":true}}]' in success["textData"]  # fmt: skip
    assert {channel for channel, _ in world.publisher.published} == {CHANNEL}


@pytest.mark.parametrize(
    ("name", "metadata", "reason"),
    [
        pytest.param("docs/a.pdf", ObjectMetadata("application/pdf"), "not image", id="not an image"),
        pytest.param("a_200x200.jpg", ObjectMetadata("image/jpeg", custom={"resizedImage": "true"}), "resized",
                     id="an output"),
        pytest.param("images/bad/a.jpg", ObjectMetadata("image/jpeg"), "EXCLUDE", id="excluded folder"),
    ],
)  # fmt: skip
def test_skipped_uploads_announce_only_start_and_completion(
    world: World, name: str, metadata: ObjectMetadata, reason: str
) -> None:
    route = extension_route(EXCLUDE_PATH_LIST="/images/bad")
    trace = ExtensionTrace()

    outcome = handle_finalize(route, world.upload(name, metadata=metadata), Policy(), world.deps, trace)

    assert outcome is Outcome.SKIPPED and reason in (trace.reason or "")
    assert world.publisher.types() == ["onStart", "onCompletion"]
    assert world.objects.writes == 0


def test_a_redelivery_writes_mints_and_publishes_nothing(world: World) -> None:
    route = extension_route(IMG_SIZES="200x200,400x400")
    finalize = world.upload("images/a.jpg")
    world.handle(route, finalize)
    tokens = {name: world.custom(name)[TOKEN_METADATA_KEY] for name in world.objects.names("images/a_")}
    writes, published = world.objects.writes, len(world.publisher.published)

    assert world.handle(route, finalize) is Outcome.DUPLICATE

    assert (world.objects.writes, len(world.publisher.published)) == (writes, published)
    assert {name: world.custom(name)[TOKEN_METADATA_KEY] for name in tokens} == tokens
    assert world.custom("images/a_200x200.jpg")[EVENTS_MARK] == str(finalize.generation)


def test_an_interrupted_attempt_is_finished_by_the_retry_with_the_same_event_ids(world: World) -> None:
    route = extension_route(IMG_SIZES="200x200")
    finalize = world.upload("images/a.jpg")
    world.publisher.refuse = TransientError("channel unavailable")
    with pytest.raises(TransientError):
        world.handle(route, finalize)
    world.publisher.refuse = None
    world.handle(route, finalize)
    first_run = world.publisher.published[:]
    world.publisher.published.clear()

    # A second interrupted delivery of the same finalize, finishing this time: the same ids again.
    world.objects.add_custom(BUCKET, "images/a_200x200.jpg", world.stored("images/a_200x200.jpg").generation,
                             {EVENTS_MARK: ""})  # fmt: skip
    writes = world.objects.writes
    world.handle(route, finalize)

    assert world.objects.writes == writes
    assert [event["id"] for _, event in world.publisher.published] == [event["id"] for _, event in first_run]


@pytest.mark.parametrize(
    ("delete", "deleted"),
    [("false", False), ("true", True), ("on_success", False)],
)
def test_an_unreadable_image_fails_every_output_and_is_copied_aside(world: World, delete: str, deleted: bool) -> None:
    route = extension_route(IMG_SIZES="200x200,400x400", FAILED_IMAGES_PATH="failed", DELETE_ORIGINAL_FILE=delete)
    finalize = world.upload("images/a.jpg", NOT_AN_IMAGE)

    assert world.handle(route, finalize) is Outcome.FAILED

    copy = world.stored("images/failed/a.jpg")
    assert (copy.data, dict(copy.metadata.custom), copy.metadata.content_type) == (
        NOT_AN_IMAGE,
        {"resizeFailed": "true"},
        "image/jpeg",
    )
    assert world.objects.names("images/a_") == []
    assert (world.stored("images/a.jpg") is None) is deleted
    success = next(event for _, event in world.publisher.published if event["type"].endswith("onSuccess"))
    assert success["textData"].count('"success":false') == 2


@pytest.mark.parametrize("delete", ["true", "on_success"])
def test_deletes_only_once_the_outcome_is_final(world: World, delete: str) -> None:
    route = extension_route(DELETE_ORIGINAL_FILE=delete)
    finalize = world.upload("images/a.jpg")
    world.objects.outage = True
    with pytest.raises(TransientError):
        world.handle(route, finalize)
    world.objects.outage = False
    assert world.stored("images/a.jpg") is not None

    assert world.handle(route, finalize) is Outcome.COMPLETE
    assert world.stored("images/a.jpg") is None


def test_gives_up_after_the_retry_window_with_on_error(world: World) -> None:
    route = extension_route(DELETE_ORIGINAL_FILE="true")
    finalize = world.upload("images/a.jpg")
    world.objects.outage = True
    world.now = UPLOADED + timedelta(hours=2)

    assert world.handle(route, finalize, window_s=3600) is Outcome.FAILED

    assert world.publisher.types()[-2:] == ["onError", "onCompletion"]
    world.objects.outage = False
    assert world.stored("images/a.jpg") is not None


def test_a_failed_image_that_cannot_be_copied_is_not_deleted(world: World) -> None:
    route = extension_route(FAILED_IMAGES_PATH="failed", DELETE_ORIGINAL_FILE="true")
    route = replace(route, limits=replace(route.limits, max_input_bytes=4))
    finalize = world.upload("images/a.jpg", b"more than four bytes")

    assert world.handle(route, finalize) is Outcome.FAILED

    assert world.stored("images/a.jpg") is not None
    assert world.stored("images/failed/a.jpg") is None


def test_a_bucket_that_refuses_public_objects_fails_the_outputs_as_the_extension_does(world: World) -> None:
    route = extension_route(MAKE_PUBLIC="true", DELETE_ORIGINAL_FILE="on_success")
    world.objects.uniform_access = True
    finalize = world.upload("images/a.jpg")

    assert world.handle(route, finalize) is Outcome.FAILED

    assert world.stored("images/a_200x200.jpg") is not None
    assert world.stored("images/a.jpg") is not None


def test_public_outputs(world: World) -> None:
    route = extension_route(MAKE_PUBLIC="true")
    world.handle(route, world.upload("images/a.jpg"))
    assert world.stored("images/a_200x200.jpg").public


def test_a_new_generation_replaces_the_outputs_with_new_tokens(world: World) -> None:
    route = extension_route()
    world.handle(route, world.upload("images/a.jpg", b"first"))
    first = world.custom("images/a_200x200.jpg")

    second = world.upload("images/a.jpg", b"second")
    assert world.handle(route, second) is Outcome.COMPLETE

    now = world.custom("images/a_200x200.jpg")
    assert now[SOURCE_GENERATION_METADATA_KEY] == str(second.generation) != first[SOURCE_GENERATION_METADATA_KEY]
    assert now[TOKEN_METADATA_KEY] != first[TOKEN_METADATA_KEY]
    assert b"second" in world.stored("images/a_200x200.jpg").data


@pytest.mark.parametrize(("regenerate", "copied"), [("true", False), ("false", True)])
def test_regenerate_token(world: World, regenerate: str, copied: bool) -> None:
    route = extension_route(REGENERATE_TOKEN=regenerate)
    world.handle(route, world.upload("images/a.jpg"))
    assert (world.custom("images/a_200x200.jpg")[TOKEN_METADATA_KEY] == "T1") is copied


def test_the_outputs_own_events_are_skipped(world: World) -> None:
    route = extension_route()
    world.handle(route, world.upload("images/a.jpg"))
    stored = world.stored("images/a_200x200.jpg")
    resource = {"bucket": BUCKET, "name": "images/a_200x200.jpg", "generation": str(stored.generation), "size": "9",
                "contentType": "image/jpeg", "metadata": dict(stored.metadata.custom)}  # fmt: skip

    assert world.handle(route, Finalize("output-event", None, resource)) is Outcome.SKIPPED


def test_without_a_channel_nothing_is_published(world: World) -> None:
    table = {"name": "quiet", "extension": "storage-resize-images"}
    (route,) = parse_routes({"route": [table]}, ImagingOptions()).extensions
    assert world.handle(route, world.upload("images/a.jpg")) is Outcome.COMPLETE
    assert world.publisher.published == []


def test_every_extension_route_and_the_first_route_of_ours_take_one_upload(world: World) -> None:
    from image_pipeline.function import Function
    from image_pipeline.settings import Settings

    ours = {"name": "gallery", "match": "images/{file}", "document": "images/{stem}", "field": "image",
            "missing": "create", "output": "gallery/", "variants": {"small": 256}}  # fmt: skip
    first = {"name": "first", "extension": "storage-resize-images", "RESIZED_IMAGES_PATH": "thumbs"}
    second = {"name": "second", "extension": "storage-resize-images", "RESIZED_IMAGES_PATH": "small",
              "IMG_SIZES": "64x64"}  # fmt: skip
    table = parse_routes({"route": [ours, first, second]}, ImagingOptions())
    settings = Settings(routes=table.routes, extension_routes=table.extensions, warm_up=False)
    function = Function(settings, connect=lambda _: world.deps)
    finalize = world.upload("images/a.jpg")

    outcome = function.handle(finalize.event_id, finalize.event_time, dict(finalize.resource))

    assert outcome is Outcome.COMPLETE
    assert world.objects.names("images/thumbs/") == ["images/thumbs/a_200x200.jpg"]
    assert world.objects.names("images/small/") == ["images/small/a_64x64.jpg"]
    assert world.objects.names("gallery/") != []
    assert world.deps.documents.get("images/a")["image"]["status"] == "complete"
