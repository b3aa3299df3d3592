"""In-memory implementations of the ports, with the same guarantees as the real adapters, for use-case unit tests."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from image_pipeline.errors import ImageRejected, ModelUnusable, RejectionCode, TransientError
from image_pipeline.model_files import LoadedCutout
from image_pipeline.options import CutoutSpec, ImagingOptions
from image_pipeline.ports import (
    RESIZED_IMAGE_MARK,
    SOURCE_GENERATION_METADATA_KEY,
    TOKEN_METADATA_KEY,
    Decide,
    Decision,
    ObjectMetadata,
    ServerTime,
)
from image_pipeline.ports import StoredObject as PortStoredObject
from image_pipeline.results import (
    CutoutFacts,
    EncodedImage,
    Placeholder,
    ProcessedImage,
    RenderedVariant,
    SourceFacts,
)

COMMIT_TIME = datetime(2030, 1, 1, tzinfo=UTC)
NOT_AN_IMAGE = b"this is not an image"
# Source bytes in which the fake cutout finds no subject.
NO_SUBJECT = b"a flat wall, nobody on it"
FAKE_COVERAGE = 0.42


@dataclass
class StoredObject:
    """One object in the fake bucket."""

    data: bytes
    generation: int
    content_type: str | None = None
    cache_control: str | None = None
    token: str | None = None
    metadata: ObjectMetadata = field(default_factory=ObjectMetadata)
    public: bool = False
    source_generation: int | None = None  # the sourceGeneration marker of an output that a new upload overwrites


@dataclass
class MemoryObjects:
    """ObjectStore in memory; `outage` makes every call raise TransientError."""

    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    outage: bool = False
    downloads: int = 0
    creates: int = 0
    writes: int = 0
    # Buckets with uniform bucket-level access: make_public is refused there.
    uniform_access: bool = False
    _next_generation: int = 1_700_000_000_000_000

    def put(self, bucket: str, name: str, data: bytes) -> int:
        """Store a source object as an upload would; return its generation."""
        self._next_generation += 1
        self.objects[(bucket, name)] = StoredObject(data, self._next_generation)
        return self._next_generation

    def download(self, bucket: str, name: str, generation: int) -> bytes | None:
        self._check()
        self.downloads += 1
        stored = self.objects.get((bucket, name))
        return stored.data if stored and stored.generation == generation else None

    def read(self, bucket: str, name: str) -> bytes | None:
        self._check()
        stored = self.objects.get((bucket, name))
        return stored.data if stored else None

    def create(self, bucket: str, name: str, data: bytes, content_type: str, cache_control: str) -> str:
        self._check()
        self.creates += 1
        existing = self.objects.get((bucket, name))
        if existing is not None:
            return existing.token
        self._next_generation += 1
        token = str(uuid.uuid4())
        metadata = ObjectMetadata(content_type, cache_control=cache_control,
                                  custom={TOKEN_METADATA_KEY: token, RESIZED_IMAGE_MARK: "true"})  # fmt: skip
        stored = StoredObject(data, self._next_generation, content_type, cache_control, token, metadata)
        self.objects[(bucket, name)] = stored
        return token

    def create_or_replace(
        self, bucket: str, name: str, data: bytes, content_type: str, cache_control: str, source_generation: int
    ) -> str:
        self._check()
        self.creates += 1
        existing = self.objects.get((bucket, name))
        made_from = existing.source_generation if existing else None
        if existing is not None and made_from is not None and made_from >= source_generation:
            return existing.token
        token = existing.token if existing and existing.token else str(uuid.uuid4())
        self._next_generation += 1
        custom = {
            TOKEN_METADATA_KEY: token,
            RESIZED_IMAGE_MARK: "true",
            SOURCE_GENERATION_METADATA_KEY: str(source_generation),
        }
        metadata = ObjectMetadata(content_type, cache_control=cache_control, custom=custom)
        self.objects[(bucket, name)] = StoredObject(
            data,
            self._next_generation,
            content_type,
            cache_control,
            token,
            metadata,
            source_generation=source_generation,
        )
        return token

    def delete(self, bucket: str, name: str, generation: int) -> None:
        self._check()
        stored = self.objects.get((bucket, name))
        if stored and stored.generation == generation:
            del self.objects[(bucket, name)]

    def stat(self, bucket: str, name: str) -> PortStoredObject | None:
        self._check()
        stored = self.objects.get((bucket, name))
        return PortStoredObject(stored.generation, dict(stored.metadata.custom)) if stored else None

    def write(self, bucket: str, name: str, data: bytes, metadata: ObjectMetadata, replacing: int) -> int | None:
        self._check()
        existing = self.objects.get((bucket, name))
        if (existing.generation if existing else 0) != replacing:
            return None
        self.writes += 1
        self._next_generation += 1
        self.objects[(bucket, name)] = StoredObject(
            data, self._next_generation, metadata.content_type, metadata.cache_control, None, metadata
        )
        return self._next_generation

    def make_public(self, bucket: str, name: str) -> bool:
        self._check()
        if self.uniform_access:
            return False
        self.objects[(bucket, name)].public = True
        return True

    def add_custom(self, bucket: str, name: str, generation: int, custom: Mapping[str, str]) -> None:
        self._check()
        stored = self.objects.get((bucket, name))
        if stored and stored.generation == generation:
            stored.metadata = replace(stored.metadata, custom={**stored.metadata.custom, **custom})

    def upload(self, bucket: str, name: str, data: bytes, metadata: ObjectMetadata) -> dict[str, Any]:
        """Store an upload with its metadata, as a client would; return the finalize event's object resource."""
        generation = self.put(bucket, name, data)
        stored = StoredObject(data, generation, metadata.content_type, metadata.cache_control, None, metadata)
        self.objects[(bucket, name)] = stored
        return {**self._resource(bucket, name, stored), "timeCreated": "2030-01-01T00:00:00Z"}

    def list_objects(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The live objects' resources, with the fields the real adapter's listing asks for (LIST_FIELDS)."""
        self._check()
        for (stored_bucket, name), stored in sorted(self.objects.items()):
            if stored_bucket == bucket and name.startswith(prefix):
                yield self._resource(bucket, name, stored)

    @staticmethod
    def _resource(bucket: str, name: str, stored: StoredObject) -> dict[str, Any]:
        """An object's JSON resource as Storage gives it: headers and custom metadata only where it has them."""
        metadata = stored.metadata
        resource: dict[str, Any] = {"bucket": bucket, "name": name, "generation": str(stored.generation),
                                    "size": str(len(stored.data))}  # fmt: skip
        headers = {"contentType": stored.content_type, "cacheControl": stored.cache_control,
                   "contentDisposition": metadata.content_disposition, "contentEncoding": metadata.content_encoding,
                   "contentLanguage": metadata.content_language}  # fmt: skip
        resource.update({key: value for key, value in headers.items() if value is not None})
        if metadata.custom:
            resource["metadata"] = dict(metadata.custom)
        return resource

    def names(self, prefix: str) -> list[str]:
        """Stored object names under `prefix`."""
        return sorted(name for _, name in self.objects if name.startswith(prefix))

    def _check(self) -> None:
        if self.outage:
            raise TransientError("storage is unavailable (injected)")


@dataclass
class MemoryPublisher:
    """EventPublisher in memory: what was published, by channel; `refuse` makes every publish raise it."""

    published: list[tuple[str, Mapping[str, object]]] = field(default_factory=list)
    refuse: Exception | None = None

    def publish(self, channel: str, events: Sequence[Mapping[str, object]]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.published.extend((channel, event) for event in events)

    def types(self) -> list[str]:
        """The published events' types, short (onStart, ...), in order."""
        return [str(event["type"]).rsplit(".", 1)[-1] for _, event in self.published]


@dataclass
class MemoryDocuments:
    """DocumentStore in memory, keyed by document path; a lock stands in for the transaction."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def transact(self, path: str, decide: Decide) -> Decision:
        with self._lock:
            document = self.documents.get(path)
            decision = decide(copy.deepcopy(document))
            if decision.writes:
                self.writes += 1
                apply_field_paths(self.documents.setdefault(path, {}), decision.writes)
            return decision

    def get(self, path: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self.documents.get(path))


def apply_field_paths(document: dict[str, Any], writes: Mapping[str, Any]) -> None:
    """Apply Firestore-style `a.b.c` field-path updates, filling server timestamps."""
    for path, value in writes.items():
        *parents, leaf = path.split(".")
        target = document
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = _fill_server_time(copy.deepcopy(value))


def _fill_server_time(value: Any) -> Any:
    if isinstance(value, ServerTime):
        return COMMIT_TIME
    if isinstance(value, dict):
        return {key: _fill_server_time(item) for key, item in value.items()}
    return value


def fake_make_variants(data: bytes, options: ImagingOptions) -> ProcessedImage:
    """A stand-in for the imaging core: a 4000x3000 source scaled to each variant, or a rejection."""
    if data == NOT_AN_IMAGE:
        raise ImageRejected(RejectionCode.UNSUPPORTED_FORMAT, "not an image (fake)")
    width, height = 4000, 3000
    variants = []
    for variant in options.variants:
        scale = min(1.0, variant.max_edge / max(width, height))
        size = round(width * scale), round(height * scale)
        # Bytes grow with the size, as real encodings do (so the never-bigger rule keeps every variant).
        encodings = tuple(
            EncodedImage(encoding.format.value, encoding.format.content_type, encoding.format.extension,
                         f"{variant.name}:{encoding.format.value}:{data[:8]!r}".encode().ljust(size[0], b"."))
            for encoding in options.encodings
        )  # fmt: skip
        variants.append(RenderedVariant(variant.name, *size, encodings))
    return ProcessedImage(
        SourceFacts("JPEG", width, height, len(data), 1),
        tuple(variants),
        Placeholder("#336699", "LKO2?U%2Tw=w]~RBVZRi};RPxuwH") if options.placeholder else None,
    )


@dataclass
class FakeModels:
    """A stand-in for the model cache: loads count, and `problem` makes every load raise ModelUnusable."""

    problem: str | None = None
    loads: int = 0

    def load(self, spec: CutoutSpec, bucket: str) -> LoadedCutout:
        self.loads += 1
        if self.problem is not None:
            raise ModelUnusable(f"cutout model {spec.uri.replace('{bucket}', bucket)} ({spec.label}): {self.problem}")
        return LoadedCutout(spec, matting=("fake session", spec.sha256))


def fake_cutout_variants(
    data: bytes, options: ImagingOptions, cutout: LoadedCutout, on_content_done: Callable[[], None]
) -> ProcessedImage:
    """A stand-in for the core with its cutout step: the mask is applied (on_content_done is called), then variants."""
    if data == NOT_AN_IMAGE:
        raise ImageRejected(RejectionCode.UNSUPPORTED_FORMAT, "not an image (fake)")
    on_content_done()
    made = fake_make_variants(data, options)
    if data == NO_SUBJECT:
        return replace(made, cutout=CutoutFacts(applied=False, reason="no_subject"))
    return replace(made, cutout=CutoutFacts(applied=True, model=cutout.spec.label, coverage=FAKE_COVERAGE))
