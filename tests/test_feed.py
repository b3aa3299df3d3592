"""The feed the page lists uploads from: bounded, each event's delivery as it moves on, read by change number; and
the page server's answer built from it (the route and document each upload goes to, or why none takes it).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer

import pytest

from image_pipeline.devtools.emulators import LOCALHOST
from image_pipeline.devtools.feed import DeliveryState, UploadFeed
from image_pipeline.devtools.page.server import make_handler
from image_pipeline.devtools.relay import Delivery, Event
from image_pipeline.devtools.stack import StackInfo
from image_pipeline.settings import Settings
from tests.fakes import MemoryDocuments

BUCKET = "feed-tests"


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def event(name: str, generation: str = "7") -> Event:
    data = {"bucket": BUCKET, "name": name, "generation": generation, "size": "10", "contentType": "image/jpeg"}
    return Event(f"id-{name}-{generation}", datetime(2026, 1, 2, tzinfo=UTC), data)


def names(entries) -> list[str]:
    return [entry.event.data["name"] for entry in entries]


def test_the_feed_keeps_the_latest_events_in_the_order_received() -> None:
    feed = UploadFeed(capacity=3)
    for name in ("a", "b", "c", "d", "e"):
        feed.received(event(name))

    page = feed.since(0)

    assert names(page.entries) == ["c", "d", "e"] and page.change == 5
    assert feed.since(page.change).entries == ()


@pytest.mark.parametrize(
    ("status", "attempts", "state"),
    [(200, 1, DeliveryState.DELIVERED), (400, 1, DeliveryState.DELIVERED), (503, 7, DeliveryState.GAVE_UP)],
)
def test_a_delivery_moves_its_entry_on_and_only_changed_entries_are_read_again(status, attempts, state) -> None:
    clock = Clock()
    feed = UploadFeed(clock=clock)
    first, second = event("a"), event("b")
    feed.received(first)
    feed.received(second)
    seen = feed.since(0).change

    clock.now += 2.5
    feed.retrying(Delivery(first, 503, 1, 0.1), 1.0)
    retrying = feed.since(seen)
    feed.delivered(Delivery(first, status, attempts, 3.5))
    delivered = feed.since(retrying.change)

    [entry] = retrying.entries
    assert (entry.state, entry.status, entry.attempts, entry.retry_in_s) == (DeliveryState.RETRYING, 503, 1, 1.0)
    assert retrying.now - entry.received_at == 2.5
    [entry] = delivered.entries
    assert (entry.state, entry.status, entry.attempts, entry.seconds) == (state, status, attempts, 3.5)
    assert entry.retry_in_s is None
    assert names(feed.since(0).entries) == ["a", "b"]  # an update keeps the entry where it was received


def test_a_delivery_of_an_event_that_left_the_feed_changes_nothing() -> None:
    feed = UploadFeed(capacity=1)
    gone = event("a")
    feed.received(gone)
    feed.received(event("b"))
    change = feed.since(0).change

    feed.delivered(Delivery(gone, 200, 1, 0.2))

    assert feed.since(0).change == change and names(feed.since(0).entries) == ["b"]


@pytest.fixture
def page_with_feed() -> Iterator[tuple[str, UploadFeed]]:
    """The page server (nothing behind it is called) for the built-in route, listing a feed; its base URL."""
    settings = Settings.from_env({})
    info = StackInfo("demo-feed", BUCKET, "127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3/", "", settings)
    feed = UploadFeed()
    server = ThreadingHTTPServer((LOCALHOST, 0), make_handler(info, MemoryDocuments(), feed=feed))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{LOCALHOST}:{server.server_address[1]}", feed
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_page_server_lists_each_upload_with_its_route_or_why_none_takes_it(page_with_feed) -> None:
    base, feed = page_with_feed
    upload, output = event("raw-uploads/u1/c1/photo é.jpg", "1796497857885980"), event("showcase-images/u1/x.webp")
    feed.received(upload)
    feed.received(output)
    feed.delivered(Delivery(upload, 200, 1, 0.66))

    status, answer = get(f"{base}/api/uploads?since=0")
    _, later = get(f"{base}/api/uploads?since={answer['change']}")
    _, routes = get(f"{base}/api/routes")

    assert status == 200 and answer["change"] == 3 and later == {"change": 3, "uploads": []}
    [listed, skipped] = answer["uploads"]
    assert {key: listed[key] for key in ("object", "generation", "route", "document", "field")} == {
        "object": "raw-uploads/u1/c1/photo é.jpg",
        "generation": "1796497857885980",
        "route": "showcase",
        "document": "characters/c1",
        "field": "visuals.showcase",
    }
    assert listed["delivery"] == {"state": "delivered", "status": 200, "attempts": 1, "seconds": 0.66, "retryInS": None}
    assert listed["originalUrl"] == (
        f"http://127.0.0.1:2/storage/v1/b/{BUCKET}/o/raw-uploads%2Fu1%2Fc1%2Fphoto%20%C3%A9.jpg"
        "?alt=media&generation=1796497857885980"
    )
    assert skipped["skipped"] == "object matches no route" and "route" not in skipped
    assert skipped["delivery"]["state"] == "delivering"
    assert routes["feed"] is True


@pytest.mark.parametrize("since", ["x", "-1", "1.5"])
def test_a_change_number_that_is_not_a_whole_number_is_a_400(page_with_feed, since: str) -> None:
    base, _ = page_with_feed

    status, answer = get(f"{base}/api/uploads?since={since}")

    assert status == 400 and "since=CHANGE" in answer["error"]
