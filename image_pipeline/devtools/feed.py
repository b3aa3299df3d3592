"""What the relay has been delivering, for the local page: the latest events, each with how its delivery stands.

The relay reports each event as it receives it, each redelivery it schedules and how the delivery ended; the page
asks for what changed since the last change number it was given, so every upload appears on it whoever made it.
Bounded: the oldest events leave the feed once it holds `capacity`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from image_pipeline.devtools.relay import Delivery, Event


class DeliveryState(str, Enum):
    """Where an event's delivery stands."""

    DELIVERING = "delivering"  # the relay has it; the function has not answered yet
    RETRYING = "retrying"  # the function answered 5xx or 429, or not at all: redelivered after a backoff
    DELIVERED = "delivered"  # the function took it (any answer not worth redelivering)
    GAVE_UP = "gave-up"  # the retry window closed, or the relay stopped


@dataclass(frozen=True)
class FeedEntry:
    """One event and how its delivery stands."""

    event: Event
    change: int  # the feed's change number at this entry's latest change
    received_at: float  # the feed's clock when the relay received the event
    state: DeliveryState = DeliveryState.DELIVERING
    status: int | None = None  # the function's last answer (None: none yet, or no answer)
    attempts: int = 0  # attempts made so far
    seconds: float | None = None  # from the first attempt to the last answer
    retry_in_s: float | None = None  # while retrying: the backoff before the next attempt


@dataclass(frozen=True)
class FeedPage:
    """The entries changed since a change number, in the order the relay received their events."""

    change: int  # the latest change: ask for what changed since this next time
    now: float  # the feed's clock when the page was read, for entries' ages
    entries: tuple[FeedEntry, ...]


class UploadFeed:
    """The last `capacity` events the relay received, updated as their deliveries go on; safe across threads."""

    def __init__(self, capacity: int = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._change = 0
        self._entries: OrderedDict[str, FeedEntry] = OrderedDict()  # by event id, oldest first

    def received(self, event: Event) -> None:
        """The relay received `event` and starts delivering it (again, if Pub/Sub sent it twice)."""
        with self._lock:
            self._change += 1
            self._entries[event.id] = FeedEntry(event, self._change, self._clock())
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def retrying(self, delivery: Delivery, delay_s: float) -> None:
        """An attempt failed in a way worth redelivering; the next comes after `delay_s`."""
        self._update(delivery, DeliveryState.RETRYING, retry_in_s=delay_s)

    def delivered(self, delivery: Delivery) -> None:
        """The delivery ended: taken by the function, or given up."""
        state = DeliveryState.DELIVERED if delivery.acknowledged else DeliveryState.GAVE_UP
        self._update(delivery, state, retry_in_s=None)

    def since(self, change: int) -> FeedPage:
        """The entries changed after `change` (0: every entry still held)."""
        with self._lock:
            changed = tuple(entry for entry in self._entries.values() if entry.change > change)
            return FeedPage(self._change, self._clock(), changed)

    def _update(self, delivery: Delivery, state: DeliveryState, retry_in_s: float | None) -> None:
        with self._lock:
            entry = self._entries.get(delivery.event.id)
            if entry is None:
                return  # it has left the feed: newer events took its place
            self._change += 1
            self._entries[delivery.event.id] = replace(
                entry,
                change=self._change,
                state=state,
                status=delivery.status,
                attempts=delivery.attempts,
                seconds=delivery.seconds,
                retry_in_s=retry_in_s,
            )
