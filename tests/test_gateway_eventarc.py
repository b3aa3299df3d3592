"""The Eventarc publisher (image_pipeline/gateway/eventarc.py) over real HTTP, against the local stand-in
(tests/eventarc_stub.py): the request firebase-admin would send, no token for the emulator, and each failure mapped
to a retried TransientError or to PublishRefused with the answer's body.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials

from image_pipeline.errors import PermanentError, PublishRefused, TransientError
from image_pipeline.extension import events
from image_pipeline.extension.events import FinalizeContext, Publishing
from image_pipeline.gateway import eventarc as gateway
from tests.eventarc_stub import EventarcStub

CHANNEL = "projects/demo-x/locations/us-central1/channels/firebase"
RESOURCE = {"bucket": "demo-x.appspot.com", "name": "images/a.jpg", "contentType": "image/jpeg", "size": "10"}
PUBLISHING = Publishing(CHANNEL, "projects/demo-x/instances/storage-resize-images")
CLOUD_EVENTS = PUBLISHING.cloud_events(
    [events.on_start(RESOURCE), events.on_completion(FinalizeContext.of("42", "2026-04-15T10:00:00Z", RESOURCE))],
    "42",
    datetime(2026, 4, 15, 10, 0, 1, tzinfo=UTC),
)


def emulated(stub: EventarcStub, timeout_s: float = 5.0) -> gateway.EventarcPublisher:
    """A publisher made as the function makes it, with CLOUD_EVENTARC_EMULATOR_HOST naming the stub."""
    return gateway.connect(timeout_s, {"CLOUD_EVENTARC_EMULATOR_HOST": stub.url})


def test_events_are_posted_to_the_channels_publish_events_method(eventarc: EventarcStub):
    emulated(eventarc).publish(CHANNEL, CLOUD_EVENTS)

    [request] = eventarc.received
    assert request.path == f"/{CHANNEL}:publishEvents"
    assert json.loads(request.body) == {"events": CLOUD_EVENTS}
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers  # the emulator gets no token (firebase-admin would send one)
    assert eventarc.published[0].channel == CHANNEL
    assert [event["type"] for event in eventarc.events] == [events.ON_START, events.ON_COMPLETION]


def test_the_body_is_compact_json_with_characters_beyond_ascii_as_they_are(eventarc: EventarcStub):
    cloud_events = PUBLISHING.cloud_events(
        [events.on_start_resize({**RESOURCE, "name": "fotos/café.jpg"})], "7", datetime(2026, 1, 1, tzinfo=UTC)
    )

    emulated(eventarc).publish(CHANNEL, cloud_events)

    [request] = eventarc.received
    assert request.body == json.dumps({"events": cloud_events}, ensure_ascii=False, separators=(",", ":")).encode()


def test_no_events_send_no_request(eventarc: EventarcStub):
    emulated(eventarc).publish(CHANNEL, [])

    assert eventarc.received == []


def test_a_session_with_credentials_sends_their_token(eventarc: EventarcStub):
    # The cloud path's session (connect gives it the Application Default Credentials), here with a fixed token.
    publisher = gateway.EventarcPublisher(eventarc.url, AuthorizedSession(Credentials(token="token-1")), 5.0)

    publisher.publish(CHANNEL, CLOUD_EVENTS)

    [request] = eventarc.received
    assert request.headers["authorization"] == "Bearer token-1"


@pytest.mark.parametrize("status", [503, 500, 429, 408])
def test_outages_and_throttling_are_transient(eventarc: EventarcStub, status: int):
    eventarc.answer(status)

    with pytest.raises(TransientError, match=f"publish 2 event\\(s\\) to {CHANNEL}: HTTP {status}: "):
        emulated(eventarc).publish(CHANNEL, CLOUD_EVENTS)
    assert eventarc.events == []


def test_the_next_delivery_publishes_after_an_outage(eventarc: EventarcStub):
    eventarc.answer(503)
    publisher = emulated(eventarc)
    with pytest.raises(TransientError):
        publisher.publish(CHANNEL, CLOUD_EVENTS)

    publisher.publish(CHANNEL, CLOUD_EVENTS)

    assert [event["id"] for event in eventarc.events] == [event["id"] for event in CLOUD_EVENTS]


def test_a_refused_connection_is_transient():
    stub = EventarcStub()
    stub.close()

    with pytest.raises(TransientError, match="ConnectionError"):
        emulated(stub).publish(CHANNEL, CLOUD_EVENTS)


def test_no_answer_within_the_timeout_is_transient(eventarc: EventarcStub):
    eventarc.stall()

    with pytest.raises(TransientError, match="Timeout"):
        emulated(eventarc, timeout_s=0.3).publish(CHANNEL, CLOUD_EVENTS)


def test_an_event_the_emulator_cannot_read_is_refused_with_its_answer(eventarc: EventarcStub):
    typeless = [{key: value for key, value in CLOUD_EVENTS[0].items() if key != "type"}]

    with pytest.raises(PublishRefused, match=r"HTTP 400: .*an event has no type"):
        emulated(eventarc).publish(CHANNEL, typeless)
    assert eventarc.events == []


@pytest.mark.parametrize("status", [400, 403, 404])
def test_other_client_errors_are_the_operators_to_fix(eventarc: EventarcStub, status: int):
    eventarc.answer(status)

    with pytest.raises(PublishRefused, match=f"to {CHANNEL}: HTTP {status}: .*scripted answer {status}"):
        emulated(eventarc).publish(CHANNEL, CLOUD_EVENTS)


def test_publish_refused_is_neither_transient_nor_a_rejection_of_the_image():
    assert not issubclass(PublishRefused, TransientError | PermanentError)


@pytest.mark.parametrize(
    ("variable", "host"),
    [
        (None, "https://eventarcpublishing.googleapis.com/v1"),
        ("", "https://eventarcpublishing.googleapis.com/v1"),
        ("http://127.0.0.1:9299", "http://127.0.0.1:9299"),
        ("127.0.0.1:9299", "https://127.0.0.1:9299"),
        ("http://127.0.0.1:9299/", "http://127.0.0.1:9299"),
    ],
)
def test_the_host_is_the_emulators_as_given_else_googles(variable: str | None, host: str):
    assert gateway.endpoint(variable) == host


def test_without_the_emulator_and_without_credentials_publishing_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")

    with pytest.raises(PublishRefused, match=r"no credentials to publish events with .*credentials\.json"):
        gateway.connect(5.0, {})
