"""Uploads and events: which storage events are source uploads, and of which route. Pure rules.

Standard library only, so that the skip decision costs microseconds and no network call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from image_pipeline.routes import Route

_GENERATION = re.compile(r"[1-9][0-9]{0,19}")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Upload:
    """One finalized source object that this function must process, as described by its event."""

    event_id: str
    event_time: datetime
    bucket: str
    name: str
    generation: int
    size: int
    content_type: str | None
    content_encoding: str | None
    route: Route
    # The route's captures from the object name, plus {stem}: everything its templates may name.
    values: Mapping[str, str]

    @property
    def document(self) -> str:
        """The path of the document that records this upload's result."""
        return self.route.document.render(self.values)

    @property
    def file_name(self) -> str:
        """The last segment of the object name."""
        return self.values[self.route.match.file_capture]

    def output_path(self, variant: str, extension: str) -> str:
        """The object one variant in one format is written to, as the route names it."""
        return self.route.output_path(self.values, self.generation, variant, extension)


@dataclass(frozen=True)
class Skip:
    """An event acknowledged without work, and why."""

    reason: str


def classify(event_id: str, event_time: str | None, data: Any, routes: tuple[Route, ...]) -> Upload | Skip:
    """Turn a storage event into an Upload to process, or a Skip for anything that is not a source upload."""
    if not isinstance(data, Mapping):
        return Skip("event data is not an object resource")
    name = data.get("name")
    bucket = data.get("bucket")
    if not isinstance(name, str) or not isinstance(bucket, str) or not bucket:
        return Skip("event has no bucket or object name")
    matched = _first_match(routes, name)
    if matched is None:
        return Skip("object matches no route")
    route, values = matched
    generation = parse_digits(data.get("generation"))
    size = parse_digits(data.get("size"), allow_zero=True)
    if generation is None or size is None:
        return Skip("event has no valid generation or size")
    if size == 0:
        return Skip("object is empty (a placeholder or an aborted upload)")
    return Upload(
        event_id=event_id,
        event_time=event_moment(event_time, data),
        bucket=bucket,
        name=name,
        generation=generation,
        size=size,
        content_type=_optional_text(data.get("contentType")),
        content_encoding=_optional_text(data.get("contentEncoding")),
        route=route,
        values=values,
    )


def _first_match(routes: tuple[Route, ...], name: str) -> tuple[Route, dict[str, str]] | None:
    """The first route (in file order) whose pattern fits the name, with its template values."""
    for route in routes:
        captures = route.match.match(name)
        if captures is not None:
            return route, route.values(captures, captures[route.match.file_capture])
    return None


def parse_digits(value: Any, allow_zero: bool = False) -> int | None:
    """A non-negative integer sent as a digit string (or an int), else None."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if allow_zero and text == "0":
        return 0
    number = int(text) if _GENERATION.fullmatch(text) else None
    # Generation and size are int64 in Cloud Storage; a larger value is forged, and Firestore would refuse to store it.
    return number if number is not None and number <= _INT64_MAX else None


def _optional_text(value: Any) -> str | None:
    """A non-empty string or None."""
    return value if isinstance(value, str) and value else None


def event_moment(event_time: str | None, data: Mapping[str, Any]) -> datetime:
    """When the event happened: the CloudEvent `time`, else the object's times; aware UTC, never in the future."""
    now = datetime.now(UTC)
    for candidate in (event_time, data.get("updated"), data.get("timeCreated")):
        parsed = parse_timestamp(candidate)
        if parsed is not None:
            # A time ahead of our clock would keep the event "young" and its retry bounds from ever applying.
            return min(parsed, now)
    return now


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime, or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
