"""The extension's CloudEvents (image_pipeline/extension/events.py): the wire form of spec 10, the data of spec 7.2,
which types are published, channel resolution as firebase-admin does it, and ids that survive a redelivery.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from image_pipeline.errors import ConfigurationError
from image_pipeline.extension import events
from image_pipeline.extension.events import (
    ON_COMPLETION,
    ON_ERROR,
    ON_START,
    ON_START_RESIZE,
    ON_SUCCESS,
    FinalizeContext,
    Publishing,
    ResizedOutput,
)

SOURCE = "projects/demo-x/instances/storage-resize-images"
FINALIZE_ID = "4721530196302816"
NOW = datetime(2026, 4, 15, 10, 0, tzinfo=UTC)
RESOURCE = {
    "kind": "storage#object",
    "id": "demo-x.appspot.com/images/a.jpg/1776247200000000",
    "name": "images/a.jpg",
    "bucket": "demo-x.appspot.com",
    "generation": "1776247200000000",
    "metageneration": "1",
    "contentType": "image/jpeg",
    "timeCreated": "2026-04-15T09:59:59.870Z",
    "updated": "2026-04-15T09:59:59.870Z",
    "size": "52133",
    "metadata": {"firebaseStorageDownloadTokens": "c1b4e1b0-0000-4000-8000-000000000000"},
}
EVERY_EVENT = (
    events.on_start(RESOURCE),
    events.on_start_resize(RESOURCE),
    events.on_success(RESOURCE, [ResizedOutput("200x200", "images/thumbs/a_200x200.jpg")]),
    events.on_error("boom"),
    events.on_completion(FinalizeContext.of(FINALIZE_ID, "2026-04-15T10:00:00.123456Z", RESOURCE)),
)
ALL = Publishing(channel="projects/demo-x/locations/us-central1/channels/firebase", source=SOURCE)


def compact(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


def test_on_success_is_spec_10s_example_key_for_key():
    event = events.on_success(RESOURCE, [ResizedOutput("200x200", "images/thumbs/a_200x200.jpg")])

    wire = events.cloud_event(event, SOURCE, FINALIZE_ID, NOW)

    assert wire == {
        "@type": "type.googleapis.com/io.cloudevents.v1.CloudEvent",
        "id": events.event_id(SOURCE, FINALIZE_ID, ON_SUCCESS),
        "type": "firebase.extensions.storage-resize-images.v1.onSuccess",
        "specVersion": "1.0",
        "source": SOURCE,
        "attributes": {
            "time": {"ceTimestamp": "2026-04-15T10:00:00.000Z"},
            "subject": {"ceString": "images/a.jpg"},
            "datacontenttype": {"ceString": "application/json"},
        },
        "textData": '{"input":'
        + compact(RESOURCE)
        + ',"outputs":[{"status":"fulfilled","value":{"size":"200x200",'
        + '"outputFilePath":"images/thumbs/a_200x200.jpg","success":true}}],"contentFilterPassed":true}',
    }
    # firebase-admin's order, which JSON keeps on the wire.
    assert list(wire) == ["@type", "id", "type", "specVersion", "source", "attributes", "textData"]
    assert list(wire["attributes"]) == ["time", "subject", "datacontenttype"]  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("event", "subject", "data"),
    [
        pytest.param(events.on_start(RESOURCE), None, RESOURCE, id="onStart"),
        pytest.param(events.on_start_resize(RESOURCE), "images/a.jpg", {"input": RESOURCE}, id="onStartResize"),
        pytest.param(
            events.on_success(
                RESOURCE,
                [ResizedOutput("200x200", "images/thumbs/a_200x200.jpg"), ResizedOutput("400x400", "x", False)],
            ),
            "images/a.jpg",
            {
                "input": RESOURCE,
                "outputs": [
                    {
                        "status": "fulfilled",
                        "value": {"size": "200x200", "outputFilePath": "images/thumbs/a_200x200.jpg", "success": True},
                    },
                    {"status": "fulfilled", "value": {"size": "400x400", "outputFilePath": "x", "success": False}},
                ],
                "contentFilterPassed": True,
            },
            id="onSuccess",
        ),
        pytest.param(events.on_error("download failed: 503"), None, {"message": "download failed: 503"}, id="onError"),
    ],
)
def test_each_event_has_spec_7_2s_subject_and_data(event, subject, data):
    wire = events.cloud_event(event, SOURCE, FINALIZE_ID, NOW)

    attributes = wire["attributes"]
    assert attributes.get("subject") == (None if subject is None else {"ceString": subject})
    names = ["time", "datacontenttype"] if subject is None else ["time", "subject", "datacontenttype"]
    assert list(attributes) == names
    assert json.loads(wire["textData"]) == data
    assert wire["textData"] == compact(data)


def test_on_completion_carries_the_first_gen_context_rebuilt_from_the_cloud_event():
    context = FinalizeContext.of(FINALIZE_ID, "2026-04-15T10:00:00.123456Z", RESOURCE)

    wire = events.cloud_event(events.on_completion(context), SOURCE, FINALIZE_ID, NOW)

    assert "subject" not in wire["attributes"]
    assert wire["textData"] == compact(
        {
            "context": {
                "eventId": FINALIZE_ID,
                "timestamp": "2026-04-15T10:00:00.123456Z",
                "eventType": "google.storage.object.finalize",
                "resource": {
                    "service": "storage.googleapis.com",
                    "name": "projects/_/buckets/demo-x.appspot.com/objects/images/a.jpg",
                    "type": "storage#object",
                },
                "params": {},
            }
        }
    )


@pytest.mark.parametrize(
    ("event_time", "resource", "timestamp"),
    [
        ("2026-04-15T10:00:00Z", RESOURCE, "2026-04-15T10:00:00Z"),
        (None, RESOURCE, "2026-04-15T09:59:59.870Z"),
        (None, {"bucket": "b", "name": "n", "timeCreated": "2026-01-01T00:00:00.000Z"}, "2026-01-01T00:00:00.000Z"),
        (None, {"bucket": "b", "name": "n"}, None),
    ],
)
def test_the_context_timestamp_is_the_event_time_else_the_objects(event_time, resource, timestamp):
    assert FinalizeContext.of("e", event_time, resource).timestamp == timestamp


def test_text_data_keeps_characters_beyond_ascii_as_json_stringify_does():
    resource = {**RESOURCE, "name": "fotos/café ☕.jpg"}

    wire = events.cloud_event(events.on_start_resize(resource), SOURCE, FINALIZE_ID, NOW)

    assert '"name":"fotos/café ☕.jpg"' in wire["textData"]
    assert wire["attributes"]["subject"] == {"ceString": "fotos/café ☕.jpg"}


def test_an_object_without_a_name_gets_no_subject():
    wire = events.cloud_event(events.on_start_resize({"bucket": "b", "name": ""}), SOURCE, FINALIZE_ID, NOW)

    assert "subject" not in wire["attributes"]


@pytest.mark.parametrize(
    ("moment", "written"),
    [
        (datetime(2026, 4, 15, 10, 0, 0, 123999, tzinfo=UTC), "2026-04-15T10:00:00.123Z"),
        (datetime(2026, 4, 15, 12, 0, tzinfo=timezone(timedelta(hours=2))), "2026-04-15T10:00:00.000Z"),
    ],
)
def test_time_is_written_as_javascripts_to_iso_string(moment, written):
    assert events.ce_timestamp(moment) == written


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        events.ce_timestamp(datetime(2026, 4, 15, 10, 0))


# Which types are published (spec 7.1, 7.4): the variable, its value, the types that pass (None: all of them).
@pytest.mark.parametrize(
    ("types", "allowed"),
    [
        pytest.param(None, None, id="unset: all"),
        pytest.param([""], frozenset(), id="set but empty: none"),
        pytest.param([ON_SUCCESS], {ON_SUCCESS}, id="one"),
        pytest.param([ON_START, ON_COMPLETION], {ON_START, ON_COMPLETION}, id="two"),
        pytest.param([f" {ON_START} ", f" {ON_ERROR}", ""], {ON_START, ON_ERROR}, id="entries trimmed"),
    ],
)
def test_the_allowed_types(types, allowed):
    assert Publishing.resolve("c", types, "s", "i", "p").allowed == allowed


@pytest.mark.parametrize(
    ("allowed", "published"),
    [
        (None, [ON_START, ON_START_RESIZE, ON_SUCCESS, ON_ERROR, ON_COMPLETION]),
        (frozenset({ON_COMPLETION, ON_START}), [ON_START, ON_COMPLETION]),
        (frozenset({"firebase.extensions.storage-resize-images.v1.complete"}), []),  # the pre-0.2.1 type
        (frozenset(), []),
    ],
)
def test_only_allowed_events_are_wired_in_their_order(allowed, published):
    publishing = Publishing(ALL.channel, SOURCE, allowed)

    wired = publishing.cloud_events(EVERY_EVENT, FINALIZE_ID, NOW)

    assert [event["type"] for event in wired] == published
    assert [publishing.allows(event_type) for event_type in events.EVENT_TYPES] == [
        event_type in published for event_type in events.EVENT_TYPES
    ]


# Channel resolution (spec 10): the name, the project known, the resource name.
@pytest.mark.parametrize(
    ("name", "project", "resolved"),
    [
        ("projects/p/locations/europe-west1/channels/c", None, "projects/p/locations/europe-west1/channels/c"),
        ("projects/p/locations/europe-west1/channels/c", "q", "projects/p/locations/europe-west1/channels/c"),
        ("locations/us-west1/channels/firebase", "p", "projects/p/locations/us-west1/channels/firebase"),
        ("firebase", "p", "projects/p/locations/us-central1/channels/firebase"),
        ("my-channel", "p", "projects/p/locations/us-central1/channels/my-channel"),
        (events.DEFAULT_CHANNEL, "p", "projects/p/locations/us-central1/channels/firebase"),
    ],
)
def test_channel_names_resolve_as_firebase_admin_resolves_them(name, project, resolved):
    assert events.resolve_channel(name, project) == resolved


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "channels/c",
        "projects/p/channels/c",
        "projects/p/locations/l/channels/",
        "projects//locations/l/channels/c",
        "locations/l/channels/c/extra",
        "/locations/l/channels/c",
        "projects/p/regions/l/channels/c",
    ],
)
def test_any_other_channel_name_is_refused_at_start_up(name):
    with pytest.raises(ConfigurationError, match=r"^EVENTARC_CHANNEL .*: Invalid channel name format\."):
        events.resolve_channel(name, "p")


@pytest.mark.parametrize("name", ["firebase", "locations/us-west1/channels/firebase"])
def test_a_channel_without_a_project_needs_one(name):
    with pytest.raises(ConfigurationError, match="names no project and none is known: set GOOGLE_CLOUD_PROJECT"):
        events.resolve_channel(name, None)


@pytest.mark.parametrize(
    ("channel", "source", "project", "expected"),
    [
        pytest.param(
            "firebase",
            None,
            "demo-x",
            Publishing(
                "projects/demo-x/locations/us-central1/channels/firebase",
                "projects/demo-x/instances/storage-resize-images",
            ),
            id="the emulator's default source",
        ),
        pytest.param(
            "projects/p/locations/us-west1/channels/firebase",
            "projects/p/locations/us-west1/services/kit-default",
            None,
            Publishing(
                "projects/p/locations/us-west1/channels/firebase", "projects/p/locations/us-west1/services/kit-default"
            ),
            id="everything given, no project needed",
        ),
    ],
)
def test_publishing_resolved(channel, source, project, expected):
    assert Publishing.resolve(channel, None, source, "storage-resize-images", project) == expected


def test_the_source_takes_the_channel_s_project_when_none_is_known():
    publishing = Publishing.resolve("projects/p/locations/l/channels/c", None, None, "storage-resize-images", None)
    assert publishing.source == "projects/p/instances/storage-resize-images"


def test_no_source_and_no_project_is_refused_naming_both_variables():
    with pytest.raises(ConfigurationError, match="set GOOGLE_CLOUD_PROJECT or GCLOUD_PROJECT"):
        Publishing.resolve("firebase", None, None, "storage-resize-images", None)


def test_a_redelivered_finalize_publishes_the_same_ids_at_a_new_time():
    first = ALL.cloud_events(EVERY_EVENT, FINALIZE_ID, NOW)
    again = ALL.cloud_events(EVERY_EVENT, FINALIZE_ID, NOW + timedelta(seconds=42))

    assert [event["id"] for event in again] == [event["id"] for event in first]
    assert [event["attributes"]["time"] for event in again] != [event["attributes"]["time"] for event in first]
    assert len({event["id"] for event in first}) == len(first)  # one id per type


def test_ids_differ_by_finalize_event_and_by_source():
    ids = {
        events.event_id(SOURCE, FINALIZE_ID, ON_START),
        events.event_id(SOURCE, "4721530196302817", ON_START),
        events.event_id("projects/demo-x/instances/other", FINALIZE_ID, ON_START),
    }

    assert len(ids) == 3


def test_ids_are_uuid5_and_fixed_for_good():
    # A changed namespace or name would make consumers take every redelivery after an upgrade for a new event.
    made = events.event_id(SOURCE, FINALIZE_ID, ON_SUCCESS)

    assert uuid.UUID(made).version == 5
    assert made == "aaea9bf2-c07c-5664-b7b9-c23d3e8cbe96"
