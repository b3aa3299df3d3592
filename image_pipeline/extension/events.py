"""The extension's CloudEvents, built as firebase-admin serialises them for the Eventarc Publishing API. Pure.

Standard library only: an extension route builds its events here and hands them to an EventPublisher (ports.py);
the adapter (gateway/eventarc.py) only posts them. Reference: resize-images spec §7 (what) and §10 (the wire form).

The events, each typed `firebase.extensions.storage-resize-images.v1.<name>` (subject: the attribute, if any):

- onStart, no subject: the object resource itself, as the finalize event carried it;
- onStartResize, subject the object name: `{"input": resource}`;
- onSuccess, subject the object name: `{"input": resource, "outputs": [{"status": "fulfilled", "value": {"size",
  "outputFilePath", "success"}}, ...], "contentFilterPassed": true}` (no content filter here: always true);
- onError, no subject: `{"message": ...}`;
- onCompletion, no subject: `{"context": ...}`, the finalize's 1st-gen EventContext, rebuilt (below).

**onCompletion's context.** The extension ran as a 1st-gen function and firebase-functions handed it an
EventContext; a 2nd-gen function gets a CloudEvent (`google.cloud.storage.object.v1.finalized`) instead, so the
context is rebuilt from it (FinalizeContext):

- `eventId`: the CloudEvent's `id` (both are the id of the Cloud Storage notification's Pub/Sub message);
- `timestamp`: the CloudEvent's `time` as it came; without one, the object's `updated`, then its `timeCreated`
  (the time a 1st-gen notification carries);
- `eventType`: `google.storage.object.finalize`, the 1st-gen name of the same event;
- `resource`: `{"service": "storage.googleapis.com", "name": "projects/_/buckets/<bucket>/objects/<name>",
  "type": "storage#object"}`;
- `params`: `{}` (a storage trigger has no wildcards).

**Ids.** firebase-admin gives each event a random UUID v4. Here the id is a UUID v5 of (source, the finalize
event's id, the type) under ID_NAMESPACE: a redelivered finalize publishes the very same ids, so a consumer can drop
a repeat by id (CloudEvents: source + id identify an event), and two instances handling one upload still differ by
source. `time` is the moment of publishing, as firebase-admin writes it (UTC, milliseconds, `Z`).

**Settings** (spec 7.1, 7.4; an extension route's parameters, resolved by Publishing.resolve):
- `EVENTARC_CHANNEL`: the channel; unset or empty, nothing is published. Resolved as firebase-admin resolves it
  (resolve_channel), so a bad name stops the start-up as it stops the extension's module load.
- `EXT_SELECTED_EVENTS` or `ALLOWED_EVENT_TYPES` (one list under the runtime's and the manifest's names: set both
  only if they agree, params.py), else every type. A comma list matched exactly, each entry trimmed (firebase-admin
  trims nothing, so `a, b` never matched `b`); set but empty: none (firebase-admin's `[""]` matches nothing).
- `EVENTARC_CLOUD_EVENT_SOURCE`: the events' `source`; unset or empty, `projects/<project>/instances/<instance id>`,
  what the Extensions emulator sets (a deployed extension gets its value from the platform).
- The project (for a channel spelled without one, and for that source): the settings' (`GOOGLE_CLOUD_PROJECT`, else
  `GCLOUD_PROJECT`), else the channel's own.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from image_pipeline.errors import ConfigurationError

EXTENSION = "storage-resize-images"
TYPE_PREFIX = f"firebase.extensions.{EXTENSION}.v1."
ON_START = TYPE_PREFIX + "onStart"
ON_START_RESIZE = TYPE_PREFIX + "onStartResize"
ON_SUCCESS = TYPE_PREFIX + "onSuccess"
ON_ERROR = TYPE_PREFIX + "onError"
ON_COMPLETION = TYPE_PREFIX + "onCompletion"
EVENT_TYPES = (ON_START, ON_START_RESIZE, ON_SUCCESS, ON_ERROR, ON_COMPLETION)

CHANNEL_VARIABLE = "EVENTARC_CHANNEL"
PROJECT_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")

DEFAULT_LOCATION = "us-central1"
DEFAULT_CHANNEL = f"locations/{DEFAULT_LOCATION}/channels/firebase"
# The only spellings with a `/` firebase-admin accepts (its pattern; fullmatch stands for JavaScript's ^...$).
_CHANNEL = re.compile(r"(?:projects/([^/]+)/)?locations/([^/]+)/channels/([^/]+)")

PROTO_TYPE = "type.googleapis.com/io.cloudevents.v1.CloudEvent"
SPEC_VERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"

FINALIZE_V1 = "google.storage.object.finalize"
STORAGE_SERVICE = "storage.googleapis.com"
OBJECT_TYPE = "storage#object"

# Chosen once, at random, and fixed for good: another would change every id, and consumers would take redeliveries
# for new events.
ID_NAMESPACE = uuid.UUID("6f0b3c1e-52a4-5d6e-9c1a-7e2f4b8d0a35")


@dataclass(frozen=True)
class ExtensionEvent:
    """One of the extension's events before it is sent: its full type, its data and its subject (None: none)."""

    type: str
    data: Mapping[str, object]
    subject: str | None = None


@dataclass(frozen=True)
class ResizedOutput:
    """One output as onSuccess reports it: the size asked for ("200x200"), the object's path, whether it was written."""

    size: str
    path: str
    success: bool = True

    def settled(self) -> dict[str, object]:
        """The output as one settled promise of the extension's `Promise.allSettled`."""
        return {
            "status": "fulfilled",
            "value": {"size": self.size, "outputFilePath": self.path, "success": self.success},
        }


@dataclass(frozen=True)
class FinalizeContext:
    """The finalize as a 1st-gen EventContext described it, rebuilt from the 2nd-gen CloudEvent (see the module)."""

    event_id: str
    timestamp: str | None
    bucket: str
    name: str

    @classmethod
    def of(cls, event_id: str, event_time: str | None, resource: Mapping[str, object]) -> FinalizeContext:
        """The context of the CloudEvent with this `id`, `time` and data (the object resource)."""
        times = (event_time, resource.get("updated"), resource.get("timeCreated"))
        timestamp = next((time for time in times if isinstance(time, str) and time), None)
        return cls(event_id, timestamp, _text(resource.get("bucket")), _text(resource.get("name")))

    def as_data(self) -> dict[str, object]:
        """The context as firebase-functions serialised it, key for key."""
        return {
            "eventId": self.event_id,
            "timestamp": self.timestamp,
            "eventType": FINALIZE_V1,
            "resource": {
                "service": STORAGE_SERVICE,
                "name": f"projects/_/buckets/{self.bucket}/objects/{self.name}",
                "type": OBJECT_TYPE,
            },
            "params": {},
        }


def on_start(resource: Mapping[str, object]) -> ExtensionEvent:
    """First on every finalize, before any filter: the object resource itself, no subject."""
    return ExtensionEvent(ON_START, dict(resource))


def on_start_resize(resource: Mapping[str, object]) -> ExtensionEvent:
    """The upload will be resized (sent before its download)."""
    return ExtensionEvent(ON_START_RESIZE, {"input": dict(resource)}, _subject(resource))


def on_success(resource: Mapping[str, object], outputs: Sequence[ResizedOutput]) -> ExtensionEvent:
    """Every output settled (some may have failed: `success` says), in the order they were asked for."""
    data = {"input": dict(resource), "outputs": [output.settled() for output in outputs], "contentFilterPassed": True}
    return ExtensionEvent(ON_SUCCESS, data, _subject(resource))


def on_error(message: str) -> ExtensionEvent:
    """Processing the upload failed with this message; no subject."""
    return ExtensionEvent(ON_ERROR, {"message": message})


def on_completion(context: FinalizeContext) -> ExtensionEvent:
    """Last on every finalize, including those that were not resized; no subject."""
    return ExtensionEvent(ON_COMPLETION, {"context": context.as_data()})


def event_id(source: str, finalize_id: str, event_type: str) -> str:
    """The id of the event of `event_type` for the finalize event `finalize_id`: the same on every redelivery."""
    return str(uuid.uuid5(ID_NAMESPACE, json.dumps([source, finalize_id, event_type])))


def ce_timestamp(moment: datetime) -> str:
    """An aware datetime as JavaScript's toISOString writes it: UTC, milliseconds, `Z`."""
    if moment.tzinfo is None:
        raise ValueError(f"a CloudEvent time must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloud_event(event: ExtensionEvent, source: str, finalize_id: str, now: datetime) -> dict[str, object]:
    """The event as the Publishing API's proto-JSON CloudEvent, as firebase-admin builds it (spec 10)."""
    attributes: dict[str, object] = {"time": {"ceTimestamp": ce_timestamp(now)}}
    if event.subject:
        attributes["subject"] = {"ceString": event.subject}
    attributes["datacontenttype"] = {"ceString": JSON_CONTENT_TYPE}
    return {
        "@type": PROTO_TYPE,
        "id": event_id(source, finalize_id, event.type),
        "type": event.type,
        "specVersion": SPEC_VERSION,
        "source": source,
        "attributes": attributes,
        # JSON.stringify's spelling: no spaces, characters beyond ASCII as they are.
        "textData": json.dumps(dict(event.data), ensure_ascii=False, separators=(",", ":")),
    }


def resolve_channel(name: str, project: str | None) -> str:
    """The channel's full name, `projects/P/locations/L/channels/C`, resolved as firebase-admin resolves it.

    `projects/P/locations/L/channels/C` is kept; `locations/L/channels/C` takes `project`; a bare `C` is
    `locations/us-central1/channels/C` in `project`. Anything else (a `/` elsewhere, an empty part, an empty name) is
    a ConfigurationError, as firebase-admin's "Invalid channel name format." stops the extension's module load.
    """
    whole = name if "/" in name else f"locations/{DEFAULT_LOCATION}/channels/{name}"
    parts = _CHANNEL.fullmatch(whole) if name else None
    if parts is None:
        raise ConfigurationError(
            f"{CHANNEL_VARIABLE} {name!r}: Invalid channel name format. Expected projects/P/locations/L/channels/C, "
            "locations/L/channels/C or a channel id C (in us-central1)"
        )
    if parts.group(1):
        return whole
    if not project:
        raise ConfigurationError(
            f"{CHANNEL_VARIABLE} {name!r} names no project and none is known: set "
            f"{' or '.join(PROJECT_VARIABLES)}, or spell the channel projects/P/locations/L/channels/C"
        )
    return f"projects/{project}/{whole}"


def event_source(given: str | None, project: str, instance_id: str) -> str:
    """EVENTARC_CLOUD_EVENT_SOURCE, else `projects/<project>/instances/<instance_id>` (the Extensions emulator's)."""
    return given or f"projects/{project}/instances/{instance_id}"


@dataclass(frozen=True)
class Publishing:
    """Where an extension route's events go and which are sent: the channel's full name, their source, the types."""

    channel: str
    source: str
    allowed: frozenset[str] | None = None  # None: every type

    @classmethod
    def resolve(
        cls, channel: str, types: Sequence[str] | None, source: str | None, instance_id: str, project: str | None
    ) -> Publishing:
        """An instance's publishing as its parameters spell it (EVENTARC_CHANNEL, the selected types: None for all,
        EVENTARC_CLOUD_EVENT_SOURCE), resolved at start-up; a ConfigurationError names the variable at fault.

        The types are trimmed (firebase-admin trims nothing, so `a, b` never matched `b` there).
        """
        allowed = None if types is None else frozenset(entry.strip() for entry in types if entry.strip())
        resolved = resolve_channel(channel, project)
        # The resolved channel names a project: the settings' or its own, which is then the source's too.
        return cls(resolved, event_source(source, resolved.split("/")[1], instance_id), allowed)

    def allows(self, event_type: str) -> bool:
        """Whether events of this type are published."""
        return self.allowed is None or event_type in self.allowed

    def cloud_events(
        self, events: Iterable[ExtensionEvent], finalize_id: str, now: datetime
    ) -> list[dict[str, object]]:
        """The allowed ones among `events`, in order, as CloudEvents to publish (an empty list: nothing to send).

        `finalize_id` is the id of the finalize event they are about (their ids derive from it); `now`, their time.
        """
        return [cloud_event(event, self.source, finalize_id, now) for event in events if self.allows(event.type)]


def _subject(resource: Mapping[str, object]) -> str | None:
    """The object name as the events' subject; firebase-admin sends no subject for an empty one."""
    return _text(resource.get("name")) or None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
