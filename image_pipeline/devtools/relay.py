"""The local stand-in for Eventarc: Pub/Sub object notifications in, binary-mode CloudEvents out, redelivered.

fake-gcs-server publishes an `OBJECT_FINALIZE` notification (the object's JSON resource) to the Pub/Sub emulator for
every upload. The relay pulls them over the emulator's REST API (no Pub/Sub client library needed), acknowledges each
at once (from then on it owns the delivery, as Eventarc does) and POSTs the CloudEvent Eventarc would send to the
function. An answer of 5xx or 429, or no answer at all (refused, reset: the function restarting), is redelivered with
the same `ce-id` and `ce-time` after a backoff doubling from 1 s to 60 s, until the retry window closes.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from image_pipeline.devtools.emulators import finalized_headers

_log = logging.getLogger(__name__)

FINALIZE = "OBJECT_FINALIZE"
# Eventarc's ids are unique per event; the emulator's message ids restart at 1 with every run, and a Firestore
# emulator that outlives `dev` may still hold the function's records of earlier ids. One id per object generation.
_EVENT_ID_NAMESPACE = uuid.UUID("5f0b8d2e-6c1a-4f44-9f55-2d1f6c1f9a10")


@dataclass(frozen=True)
class Backoff:
    """When to redeliver: `first_s` doubling up to `cap_s`, no new attempt once `give_up_after_s` has passed."""

    first_s: float = 1.0
    cap_s: float = 60.0
    give_up_after_s: float = 600.0

    def delay(self, failed_attempts: int) -> float:
        """The wait before the next attempt, after `failed_attempts` (1 or more) have failed."""
        return min(self.cap_s, self.first_s * 2 ** (failed_attempts - 1))


@dataclass(frozen=True)
class Event:
    """One finalize notification as the CloudEvent Eventarc would deliver."""

    id: str
    time: datetime
    data: Mapping[str, Any]  # the object's JSON resource

    @property
    def object_url(self) -> str:
        """`gs://bucket/name`, for log lines."""
        return f"gs://{self.data.get('bucket')}/{self.data.get('name')}"


@dataclass(frozen=True)
class Delivery:
    """How an event's delivery ended: the last HTTP status (None: no answer), attempts and seconds taken."""

    event: Event
    status: int | None
    attempts: int
    seconds: float

    @property
    def acknowledged(self) -> bool:
        """Whether the function took the event (any answer not worth redelivering)."""
        return self.status is not None and not retryable(self.status)


def retryable(status: int) -> bool:
    """Answers Eventarc redelivers: server errors and 429 (Cloud Run's 'too many requests')."""
    return status >= 500 or status == 429


def event_of(message: Mapping[str, Any]) -> Event | None:
    """The CloudEvent for a Pub/Sub message from fake-gcs-server; None for anything but a finalize notification."""
    attributes = message.get("attributes") or {}
    if attributes.get("eventType") != FINALIZE:
        return None
    data = json.loads(base64.b64decode(message.get("data") or b""))
    stamp = attributes.get("eventTime") or message.get("publishTime")
    when = datetime.fromisoformat(stamp) if stamp else datetime.now(UTC)
    key = f"{data.get('bucket')}/{data.get('name')}#{data.get('generation')}"
    return Event(uuid.uuid5(_EVENT_ID_NAMESPACE, key).hex, when, data)


def post_event(function_url: str, event: Event, timeout_s: float = 540) -> int | None:
    """POST the event once; its HTTP status, or None when the function did not answer (refused, reset, timed out)."""
    call = urllib.request.Request(
        function_url,
        data=json.dumps(event.data).encode(),
        method="POST",
        headers=finalized_headers(event.data, event.id, event.time),
    )
    try:
        with urllib.request.urlopen(call, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class Subscription:
    """A pull subscription on the Pub/Sub emulator, over its REST API."""

    def __init__(self, emulator_host: str, project: str, topic: str, name: str) -> None:
        base = f"http://{emulator_host}/v1/projects/{project}"
        self.topic = f"projects/{project}/topics/{topic}"
        self._topic_url = f"{base}/topics/{topic}"
        self._path = f"{base}/subscriptions/{name}"

    def create(self) -> None:
        """Create the topic and the subscription (fake-gcs-server publishes only to an existing topic)."""
        _call("PUT", self._topic_url, None)
        _call("PUT", self._path, {"topic": self.topic, "ackDeadlineSeconds": 60})

    def pull(self, max_messages: int = 20) -> list[dict[str, Any]]:
        """Messages waiting now (none: an empty list), acknowledged before they are returned."""
        answer = _call("POST", f"{self._path}:pull", {"maxMessages": max_messages, "returnImmediately": True})
        received = answer.get("receivedMessages") or []
        if received:
            _call("POST", f"{self._path}:acknowledge", {"ackIds": [item["ackId"] for item in received]})
        return [item["message"] for item in received]


def _call(method: str, url: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
    """One JSON call to the emulator; a 409 (already exists) counts as success."""
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        if error.code == 409:
            return {}
        raise


def _ignore(*_: object) -> None:
    return


class Relay:
    """Pulls notifications in a thread and delivers each event in a pool, so one backing-off event delays no other.

    It reports each event as it receives it (`on_received`), each redelivery it schedules with its backoff
    (`on_retrying`) and how each delivery ended (`on_delivered`).
    """

    def __init__(
        self,
        subscription: Subscription,
        function_url: str,
        on_delivered: Callable[[Delivery], None],
        backoff: Backoff = Backoff(),
        poll_s: float = 0.1,
        workers: int = 8,
        on_received: Callable[[Event], None] = _ignore,
        on_retrying: Callable[[Delivery, float], None] = _ignore,
    ) -> None:
        self._subscription = subscription
        self._function_url = function_url
        self._on_delivered = on_delivered
        self._on_received = on_received
        self._on_retrying = on_retrying
        self._backoff = backoff
        self._poll_s = poll_s
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="relay-delivery")
        self._puller = threading.Thread(target=self._pull_forever, name="relay-pull", daemon=True)

    def start(self) -> None:
        """Start pulling."""
        self._puller.start()

    def stop(self) -> None:
        """Stop pulling and abandon backoffs; a delivery in flight finishes its request."""
        self._stopping.set()
        self._puller.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _pull_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._subscription.pull()
            except (urllib.error.URLError, OSError) as error:
                _log.warning("relay: cannot pull from the Pub/Sub emulator: %s", error)
                messages = []
            for message in messages:
                event = event_of(message)
                if event is not None:
                    _report(event, self._on_received, event)
                    self._pool.submit(self._deliver_reporting, event)
            if not messages:
                self._stopping.wait(self._poll_s)

    def _deliver_reporting(self, event: Event) -> None:
        try:
            delivery = self.deliver(event)
        except Exception:  # a thread's error would otherwise vanish silently
            _log.exception("relay: delivering %s failed", event.object_url)
            return
        _report(event, self._on_delivered, delivery)

    def deliver(self, event: Event) -> Delivery:
        """Deliver until acknowledged, the retry window closes, or the relay stops; the same id and time each time."""
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            status = post_event(self._function_url, event)
            elapsed = time.monotonic() - started
            if status is not None and not retryable(status):
                return Delivery(event, status, attempts, elapsed)
            delay = self._backoff.delay(attempts)
            if elapsed + delay > self._backoff.give_up_after_s:
                _log.warning("relay: gave up on %s after %d attempts (last: %s)", event.object_url, attempts, status)
                return Delivery(event, status, attempts, elapsed)
            _log.info(
                "relay: %s answered %s; redelivering in %.0f s",
                event.object_url,
                "nothing" if status is None else status,
                delay,
            )
            _report(event, self._on_retrying, Delivery(event, status, attempts, elapsed), delay)
            if self._stopping.wait(delay):
                return Delivery(event, status, attempts, time.monotonic() - started)


def _report(event: Event, callback: Callable[..., None], *facts: object) -> None:
    """Call a report callback on `event`; its error is logged, never raised into the relay's threads."""
    try:
        callback(*facts)
    except Exception:
        _log.exception("relay: reporting on %s failed", event.object_url)
