"""Pure rules about object names and events: which uploads are ours, where outputs go, what their URLs are.

Standard library only, so that the skip decision costs microseconds and no network call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from image_pipeline.routes import STEM, Route, output_file_name
from image_pipeline.settings import Settings, UrlMode

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

    @property
    def output_folder(self) -> str:
        """Where this upload's variants are written."""
        return self.route.output.render(self.values)


@dataclass(frozen=True)
class Skip:
    """An event acknowledged without work, and why."""

    reason: str


def classify(event_id: str, event_time: str | None, data: Any, settings: Settings) -> Upload | Skip:
    """Turn a storage event into an Upload to process, or a Skip for anything that is not a source upload."""
    if not isinstance(data, Mapping):
        return Skip("event data is not an object resource")
    name = data.get("name")
    bucket = data.get("bucket")
    if not isinstance(name, str) or not isinstance(bucket, str) or not bucket:
        return Skip("event has no bucket or object name")
    matched = _first_match(settings.routes, name)
    if matched is None:
        return Skip("object matches no route")
    route, values = matched
    generation = _digits(data.get("generation"))
    size = _digits(data.get("size"), allow_zero=True)
    if generation is None or size is None:
        return Skip("event has no valid generation or size")
    if size == 0:
        return Skip("object is empty (a placeholder or an aborted upload)")
    return Upload(
        event_id=event_id,
        event_time=_event_time(event_time, data),
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


def _digits(value: Any, allow_zero: bool = False) -> int | None:
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


def _event_time(event_time: str | None, data: Mapping[str, Any]) -> datetime:
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


def output_path(upload: Upload, variant_name: str, extension: str) -> str:
    """The deterministic name of one variant: a retry of the same generation writes the same names."""
    file_name = output_file_name(upload.values[STEM], upload.generation, variant_name, extension)
    return upload.output_folder + file_name


def download_url(bucket: str, path: str, token: str, settings: Settings) -> str:
    """The URL the app stores: a Firebase download URL with the token, or a public URL if so configured."""
    if settings.url_mode is UrlMode.PUBLIC:
        return f"{settings.public_url_base}/{bucket}/{quote(path, safe='/')}"
    return f"{settings.download_url_base}/b/{bucket}/o/{quote(path, safe='')}?alt=media&token={token}"
