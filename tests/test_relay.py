"""The relay: uploads to fake-gcs-server reach a stand-in function through the Pub/Sub emulator as Eventarc's
CloudEvents, redelivered on 5xx or no answer with the same id and time, never after a 2xx.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from image_pipeline.devtools import emulators, stack
from image_pipeline.devtools.relay import Backoff, Delivery, Relay, Subscription, event_of
from tests.dev_process import skip_without_pubsub_emulator

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
        self.port = self._server.server_address[1]
        self.url = f"http://{emulators.LOCALHOST}:{self.port}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop answering: connections are refused from now on."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def services() -> Iterator[stack.Services]:
    """The Pub/Sub emulator and fake-gcs-server publishing to it (no Firestore: nothing here reads documents)."""
    skip_without_pubsub_emulator()
    started = stack.start_services(stack.Ports.free(), PROJECT, firestore_host="unused")
    emulators.create_bucket(started.storage.url, BUCKET)
    yield started
    for service in reversed(started.all()):
        service.stop()


class Harness:
    """A relay to a function URL, collecting its deliveries."""

    def __init__(self, services: stack.Services, function_url: str, backoff: Backoff = FAST) -> None:
        self.storage_url = services.storage.url
        self.deliveries: list[Delivery] = []
        subscription = Subscription(services.pubsub.host_port, PROJECT, stack.TOPIC, stack.SUBSCRIPTION)
        self.relay = Relay(subscription, function_url, self.deliveries.append, backoff=backoff, poll_s=0.05)
        self.relay.start()

    def upload(self, data: bytes = b"relay test bytes") -> dict:
        """Upload an object with a fresh name over the JSON API, as any client would; its resource."""
        name = f"uploads/{uuid.uuid4().hex} é.txt"
        url = f"{self.storage_url}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={quote(name)}"
        return json.loads(emulators.request("POST", url, data, {"Content-Type": "text/plain"}))

    def wait_for_deliveries(self, count: int, timeout_s: float = 15) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.deliveries)


@pytest.fixture
def harness_for(services: stack.Services) -> Iterator:
    made: list[Harness] = []

    def make(function_url: str) -> Harness:
        made.append(Harness(services, function_url))
        return made[-1]

    yield make
    for harness in made:
        harness.relay.stop()


def test_an_upload_reaches_the_function_once_as_eventarcs_cloud_event(harness_for) -> None:
    function = StubFunction()
    harness = harness_for(function.url)

    resource = harness.upload()
    [delivery] = harness.wait_for_deliveries(1)
    time.sleep(0.5)  # time enough for a duplicate to show up

    [request] = function.received
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
    function.close()


@pytest.mark.parametrize("answers", [(500,), (503, 502, 500)])
def test_a_server_error_is_redelivered_with_backoff_and_the_same_id_and_time(harness_for, answers) -> None:
    function = StubFunction(answers=answers)
    harness = harness_for(function.url)

    harness.upload()
    [delivery] = harness.wait_for_deliveries(1)

    attempts = function.received
    assert [delivery.status, delivery.attempts] == [200, len(answers) + 1]
    assert {(a.headers["ce-id"], a.headers["ce-time"]) for a in attempts} == {
        (delivery.event.id, attempts[0].headers["ce-time"])
    }
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert [round(gap, 1) >= FAST.delay(n) for n, gap in enumerate(gaps, start=1)] == [True] * len(gaps)
    function.close()


@pytest.mark.parametrize("status", [200, 204, 400])
def test_an_answer_that_is_not_an_error_worth_retrying_is_not_redelivered(harness_for, status) -> None:
    function = StubFunction(answers=(status,))
    harness = harness_for(function.url)

    harness.upload()
    [delivery] = harness.wait_for_deliveries(1)
    time.sleep(3 * FAST.first_s)

    assert (delivery.status, delivery.attempts, len(function.received)) == (status, 1, 1)
    function.close()


def test_a_refused_connection_is_redelivered_until_the_function_listens(harness_for) -> None:
    port = emulators.free_port()
    harness = harness_for(f"http://{emulators.LOCALHOST}:{port}/")

    harness.upload()
    time.sleep(0.5)  # several refused attempts
    function = StubFunction(port=port)
    [delivery] = harness.wait_for_deliveries(1)

    assert delivery.status == 200 and delivery.attempts > 1
    assert [r.headers["ce-id"] for r in function.received] == [delivery.event.id]
    function.close()


def test_the_relay_survives_the_function_restarting(harness_for) -> None:
    first = StubFunction()
    harness = harness_for(first.url)
    harness.upload()
    harness.wait_for_deliveries(1)

    first.close()
    harness.upload()
    time.sleep(0.3)
    second = StubFunction(port=first.port)
    deliveries = harness.wait_for_deliveries(2)

    assert [d.status for d in deliveries] == [200, 200]
    assert [r.headers["ce-id"] for r in second.received] == [deliveries[1].event.id]
    second.close()


def test_redelivery_gives_up_when_the_window_closes(services) -> None:
    function = StubFunction(answers=(500,) * 100)
    harness = Harness(services, function.url, Backoff(first_s=0.05, cap_s=0.1, give_up_after_s=0.5))
    try:
        harness.upload()
        [delivery] = harness.wait_for_deliveries(1)
    finally:
        harness.relay.stop()
        function.close()

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
