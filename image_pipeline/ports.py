"""The ports the use case needs: object storage, the documents that record results, and an event channel.

Adapters live in gateway/; only extension routes publish events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Protocol

TOKEN_METADATA_KEY = "firebaseStorageDownloadTokens"
# Custom metadata on every output of every route, as the Resize Images extension marks its own: extension routes skip
# objects that carry it, so no route's outputs are taken as uploads by an extension route.
RESIZED_IMAGE_MARK = "resizedImage"
# Custom metadata on an output that a new upload overwrites: the source generation it was made from.
SOURCE_GENERATION_METADATA_KEY = "sourceGeneration"


class ServerTime:
    """Marks a field the document store fills with its own commit time (Firestore's server timestamp)."""

    def __repr__(self) -> str:
        return "SERVER_TIME"


SERVER_TIME = ServerTime()


class Outcome(str, Enum):
    """How an event ended; the `outcome` of the summary log line."""

    SKIPPED = "skipped"
    COMPLETE = "complete"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"
    NOT_OWNER = "not_owner"
    DOCUMENT_MISSING = "document_missing"


@dataclass(frozen=True)
class Decision:
    """What a guarded read decided: the updates to apply in the same transaction, and whether the event ends here.

    `ends` is the event's outcome when the read settles it (a duplicate, an older generation, ...), None to go on.
    `writes` are dotted field paths; applied to a missing document, they create it.
    """

    ends: Outcome | None = None
    writes: Mapping[str, Any] | None = None


Decide = Callable[[Mapping[str, Any] | None], Decision]


def nested_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted field paths as the nested maps a document stores: {"meta.userId": 1} -> {"meta": {"userId": 1}}."""
    document: dict[str, Any] = {}
    for path, value in fields.items():
        *parents, leaf = path.split(".")
        target = document
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return document


@dataclass(frozen=True)
class ObjectMetadata:
    """An object's headers and custom metadata, None for a header it has not got."""

    content_type: str | None = None
    content_disposition: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    custom: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class StoredObject:
    """An object as it is stored now: its generation and its custom metadata."""

    generation: int
    custom: Mapping[str, str]


class ObjectStore(Protocol):
    """Object storage (Cloud Storage). Raises TransientError for outages, timeouts and throttling."""

    def download(self, bucket: str, name: str, generation: int) -> bytes | None:
        """The bytes of exactly this generation, or None if that generation is gone."""

    def read(self, bucket: str, name: str) -> bytes | None:
        """The bytes of the object's current generation (a file the operator placed, e.g. a model), or None."""

    def create(self, bucket: str, name: str, data: bytes, content_type: str, cache_control: str) -> str:
        """Write the object only if absent, with a fresh download token and the RESIZED_IMAGE_MARK; return the token
        of the stored object."""

    def create_or_replace(
        self, bucket: str, name: str, data: bytes, content_type: str, cache_control: str, source_generation: int
    ) -> str:
        """Write the object made from `source_generation` unless it holds that generation's or a newer one's already.

        An object made from an older generation (or not marked with one) is replaced and keeps its download token, so
        URLs already handed out serve the new bytes; an absent one gets a fresh token. Return the stored object's token.
        """

    def delete(self, bucket: str, name: str, generation: int) -> None:
        """Delete exactly this generation; nothing happens if it is already gone."""

    def stat(self, bucket: str, name: str) -> StoredObject | None:
        """The object's current generation and custom metadata, or None if there is no such object."""

    def write(self, bucket: str, name: str, data: bytes, metadata: ObjectMetadata, replacing: int) -> int | None:
        """Write the object with exactly this metadata if its current generation is `replacing` (0: absent).

        Returns the new generation; None when the generation is not `replacing` (another writer came first).
        """

    def make_public(self, bucket: str, name: str) -> bool:
        """Let anyone read the object (the allUsers reader ACL); False if the bucket refuses per-object ACLs."""

    def add_custom(self, bucket: str, name: str, generation: int, custom: Mapping[str, str]) -> None:
        """Add custom metadata to exactly this generation; nothing happens if it is gone or replaced."""

    def list_objects(self, bucket: str, prefix: str) -> Iterator[Mapping[str, Any]]:
        """The live objects under `prefix` in name order, as object resources (the shape an event carries), streamed."""


class DocumentStore(Protocol):
    """The documents that record results (Firestore). Raises TransientError for outages, timeouts and contention."""

    def transact(self, path: str, decide: Decide) -> Decision:
        """Read the document at `path` (None if missing), call `decide`, and apply its writes.

        The writes are applied atomically with that read.
        """

    def get(self, path: str) -> Mapping[str, Any] | None:
        """The document at `path` as stored now (None if missing), read outside any transaction."""


class EventPublisher(Protocol):
    """An Eventarc channel (the Eventarc Publishing API, or its emulator) that takes CloudEvents.

    Raises TransientError for outages, timeouts, throttling (429) and server errors (5xx), and PublishRefused when the
    events are refused for good (another 4xx: the channel, the role or the API is not set up) or there are no
    credentials to publish with. Adapters are imported only by routes that publish: see gateway/eventarc.py.
    """

    def publish(self, channel: str, events: Sequence[Mapping[str, object]]) -> None:
        """Publish `events` (proto-JSON CloudEvents, as extension/events.py builds them) in one request to `channel`.

        `channel` is a full resource name, `projects/P/locations/L/channels/C`. No events: no request.
        """
