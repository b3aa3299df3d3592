"""The relay: uploads to fake-gcs-server reach a stand-in function through the Pub/Sub emulator as Eventarc's
CloudEvents, redelivered on 5xx or no answer with the same id and time, never after a 2xx.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from image_pipeline.devtools import emulators, stack
from image_pipeline.devtools.relay import Backoff, Delivery, Event, Relay, Subscription, event_of
from tests.dev_process import skip_without_pubsub_emulator
from tests.waits import wait_until

PROJECT = "demo-relay"
BUCKET = "relay-tests"
FAST = Backoff(first_s=0.1, cap_s=0.4, give_up_after_s=10)


@dataclass(frozen=True)
class Received:
    """One request the stand-in function received, and when."""

    headers: dict[str, str]
    body: dict
    at: float


class StubFunction:
    """An HTTP server that records each request and answers the next scripted status (200 once they run out)."""

    def __init__(self, port: int = 0, answers: tuple[int, ...] = ()) -> None:
        self.received: list[Received] = []
        self._answers = list(answers)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()))
                self.send_response(stub._answers.pop(0) if stub._answers else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((emulators.LOCALHOST, port), Handler)
        self._closed = False
        self.port = self._server.server_address[1]
        self.url = f"http://{emulators.LOCALHOST}:{self.port}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop answering: connections are refused from now on. Closing again does nothing."""
        if not self._closed:
            self._closed = True
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def stub_function() -> Iterator[Callable[..., StubFunction]]:
    """Start stand-in functions (`port`, scripted `answers`); each one is closed after the test, whatever happened."""
    started: list[StubFunction] = []

    def start(port: int = 0, answers: tuple[int, ...] = ()) -> StubFunction:
        started.append(StubFunction(port, answers))
        return started[-1]

    yield start
    for function in started:
        function.close()


class RelayLog(logging.Handler):
    """The relay's log messages, as its threads log them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def unanswered(self, resource: dict) -> int:
        """How many attempts to deliver the object's event got no answer (refused or reset), so far."""
        line = f"relay: gs://{resource['bucket']}/{resource['name']} answered nothing;"
        return sum(message.startswith(line) for message in self.messages)


@pytest.fixture
def relay_log() -> Iterator[RelayLog]:
    """The relay's log lines, whatever another test did to the package's loggers (levels, propagation)."""
    logger = logging.getLogger("image_pipeline.devtools.relay")
    handler, level = RelayLog(), logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def services() -> Iterator[stack.Services]:
    """The Pub/Sub emulator and fake-gcs-server publishing to it (no Firestore: nothing here reads documents)."""
    skip_without_pubsub_emulator()
    started = stack.start_services(stack.Ports.free(), PROJECT, firestore_host="unused")
    try:
        emulators.create_bucket(started.storage.url, BUCKET)
        yield started
    finally:
        for service in reversed(started.all()):
            service.stop()


class RecordingSubscription(Subscription):
    """The relay's subscription, recording what its pulls brought: each event in order, and how many came back empty."""

    def __init__(self, emulator_host: str, project: str, topic: str, name: str) -> None:
        super().__init__(emulator_host, project, topic, name)
        self.pulled: list[Event | None] = []
        self.empty_pulls = 0

    def pull(self, max_messages: int = 20) -> list[dict]:
        messages = super().pull(max_messages)
        self.pulled.extend(event_of(message) for message in messages)
        self.empty_pulls += not messages
        return messages


class Harness:
    """A relay to a function URL, collecting its reports: events received, redeliveries scheduled, deliveries."""

    def __init__(self, services: stack.Services, function_url: str, backoff: Backoff = FAST) -> None:
        self.storage_url = services.storage.url
        self.deliveries: list[Delivery] = []
        self.received: list[Event] = []
        self.retrying: list[tuple[int | None, int, float]] = []  # each failed attempt's answer, count and backoff
        self.subscription = RecordingSubscription(services.pubsub.host_port, PROJECT, stack.TOPIC, stack.SUBSCRIPTION)
        self.relay = Relay(
            self.subscription,
            function_url,
            self.deliveries.append,
            backoff=backoff,
            poll_s=0.05,
            on_received=self.received.append,
            on_retrying=lambda delivery, delay: self.retrying.append((delivery.status, delivery.attempts, delay)),
        )
        self.relay.start()

    def upload(self, data: bytes = b"relay test bytes") -> dict:
        """Upload an object with a fresh name over the JSON API, as any client would; its resource."""
        name = f"uploads/{uuid.uuid4().hex} é.txt"
        url = f"{self.storage_url}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={quote(name)}"
        return json.loads(emulators.request("POST", url, data, {"Content-Type": "text/plain"}))

    def wait_for_deliveries(self, count: int, timeout_s: float = 15) -> list[Delivery]:
        """The deliveries reported so far, once there are `count` of them."""
        wait_until(
            lambda: len(self.deliveries) >= count,
            timeout_s,
            lambda: f"{count} deliveries; the relay reported {self.deliveries}",
            interval_s=0.02,
        )
        return list(self.deliveries)

    def deliver_marker(self, timeout_s: float = 15) -> Delivery:
        """Upload a marker object, wait until the relay has delivered it and then found the subscription empty; its
        delivery.

        The empty pull shows that every notification published before the marker's has been pulled by then, so
        `subscription.pulled` holds each one a duplicate delivery could have come from: "it happened once" is checked
        there, on a point the relay is known to have passed, rather than by sleeping and counting.
        """
        name = self.upload(b"marker")["name"]
        wait_until(
            lambda: any(delivery.event.data["name"] == name for delivery in self.deliveries),
            timeout_s,
            lambda: f"the marker {name!r} to be delivered; the relay reported {self.deliveries}",
            interval_s=0.02,
        )
        empty = self.subscription.empty_pulls
        wait_until(lambda: self.subscription.empty_pulls > empty, timeout_s, "an empty pull after the marker")
        return next(delivery for delivery in self.deliveries if delivery.event.data["name"] == name)

    def pulled_ids(self) -> list[str | None]:
        """The id of each notification the relay pulled, in order (None: not a finalize notification)."""
        return [event.id if event else None for event in self.subscription.pulled]


@pytest.fixture
def harness_for(services: stack.Services) -> Iterator[Callable[..., Harness]]:
    """Start relays to a function URL (with `backoff`); each one is stopped after the test."""
    made: list[Harness] = []

    def make(function_url: str, backoff: Backoff = FAST) -> Harness:
        made.append(Harness(services, function_url, backoff))
        return made[-1]

    yield make
    for harness in made:
        harness.relay.stop()


def test_an_upload_reaches_the_function_once_as_eventarcs_cloud_event(harness_for, stub_function) -> None:
    function = stub_function()
    harness = harness_for(function.url)

    resource = harness.upload()
    [delivery] = harness.wait_for_deliveries(1)
    marker = harness.deliver_marker()

    assert harness.pulled_ids() == [delivery.event.id, marker.event.id]
    [request, _] = function.received
    assert delivery.status == 200 and delivery.attempts == 1
    assert request.headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert request.headers["ce-specversion"] == "1.0"
    assert request.headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{BUCKET}"
    assert request.headers["ce-subject"] == f"objects/{quote(resource['name'], safe='/')}"
    assert request.headers["ce-id"] == delivery.event.id
    assert abs(datetime.fromisoformat(request.headers["ce-time"]).timestamp() - time.time()) < 10
    assert request.headers["content-type"] == "application/json"
    for key in ("bucket", "name", "generation", "size", "contentType", "md5Hash"):
        assert request.body[key] == resource[key], key


@pytest.mark.parametrize("answers", [(500,), (503, 502, 500)])
def test_a_server_error_is_redelivered_with_backoff_and_the_same_id_and_time(
    harness_for, stub_function, answers
) -> None:
    function = stub_function(answers=answers)
    harness = harness_for(function.url)

    harness.upload()
    [delivery] = harness.wait_for_deliveries(1)

    attempts = function.received
    assert [delivery.status, delivery.attempts] == [200, len(answers) + 1]
    # What the page's feed hears: the event once, then each redelivery with the answer that caused it.
    assert harness.received == [delivery.event]
    assert harness.retrying == [(status, n, FAST.delay(n)) for n, status in enumerate(answers, start=1)]
    assert {(a.headers["ce-id"], a.headers["ce-time"]) for a in attempts} == {
        (delivery.event.id, attempts[0].headers["ce-time"])
    }
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert [round(gap, 1) >= FAST.delay(n) for n, gap in enumerate(gaps, start=1)] == [True] * len(gaps)


@pytest.mark.parametrize("status", [200, 204, 400])
def test_an_answer_that_is_not_an_error_worth_retrying_is_not_redelivered(harness_for, stub_function, status) -> None:
    function = stub_function(answers=(status,))
    harness = harness_for(function.url)

    harness.upload()
    [delivery] = harness.wait_for_deliveries(1)
    marker = harness.deliver_marker()

    assert (delivery.status, delivery.attempts) == (status, 1)
    assert harness.pulled_ids() == [delivery.event.id, marker.event.id]
    assert [r.headers["ce-id"] for r in function.received] == [delivery.event.id, marker.event.id]


def test_a_refused_connection_is_redelivered_until_the_function_listens(harness_for, stub_function, relay_log) -> None:
    port = emulators.free_port()
    harness = harness_for(f"http://{emulators.LOCALHOST}:{port}/")

    resource = harness.upload()
    wait_until(lambda: relay_log.unanswered(resource) >= 2, 10, "two refused attempts to deliver the upload")
    function = stub_function(port=port)
    [delivery] = harness.wait_for_deliveries(1)

    assert delivery.status == 200 and delivery.attempts == relay_log.unanswered(resource) + 1 >= 3
    assert [r.headers["ce-id"] for r in function.received] == [delivery.event.id]


def test_the_relay_survives_the_function_restarting(harness_for, stub_function, relay_log) -> None:
    first = stub_function()
    harness = harness_for(first.url)
    harness.upload()
    harness.wait_for_deliveries(1)

    first.close()
    resource = harness.upload()
    wait_until(lambda: relay_log.unanswered(resource) >= 1, 10, "an attempt to deliver to the stopped function")
    second = stub_function(port=first.port)
    deliveries = harness.wait_for_deliveries(2)

    assert [d.status for d in deliveries] == [200, 200] and deliveries[1].attempts > 1
    assert [r.headers["ce-id"] for r in second.received] == [deliveries[1].event.id]


def test_redelivery_gives_up_when_the_window_closes(harness_for, stub_function) -> None:
    function = stub_function(answers=(500,) * 100)
    harness = harness_for(function.url, Backoff(first_s=0.05, cap_s=0.1, give_up_after_s=0.5))

    harness.upload()
    [delivery] = harness.wait_for_deliveries(1)

    assert not delivery.acknowledged and delivery.status == 500
    assert 3 <= delivery.attempts == len(function.received) <= 12


def test_backoff_doubles_from_one_second_to_a_minute() -> None:
    assert [Backoff().delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_only_finalize_notifications_become_events_with_one_id_per_generation() -> None:
    resource = {"bucket": "b", "name": "a/x.jpg", "generation": "7"}
    message = {
        "data": base64.b64encode(json.dumps(resource).encode()).decode(),
        "attributes": {"eventType": "OBJECT_FINALIZE", "eventTime": "2026-01-02T03:04:05Z"},
        "messageId": "1",
    }
    deleted = {**message, "attributes": {**message["attributes"], "eventType": "OBJECT_DELETE"}}
    other = {**message, "data": base64.b64encode(json.dumps({**resource, "generation": "8"}).encode()).decode()}

    event = event_of(message)

    assert event is not None and event.data == resource and event.time.isoformat() == "2026-01-02T03:04:05+00:00"
    assert event_of(message) == event
    assert event_of(deleted) is None
    assert (other_event := event_of(other)) is not None and other_event.id != event.id
