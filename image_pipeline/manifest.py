"""The manifest: the map a route's document holds at its `field`, built and read here only. Standard library only.

Built: the field updates that claim, complete or fail a generation (the manifest replaced whole, plus the route's
mirrored fields). Read: the few facts other code needs from a stored document (status, generation, error, the
objects it references), each tolerant of documents written by hand or by older versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import NotRequired, TypedDict

from image_pipeline.errors import PermanentError
from image_pipeline.policy import UrlRules
from image_pipeline.ports import SERVER_TIME, ServerTime
from image_pipeline.results import ProcessedImage, SourceFacts
from image_pipeline.routes import Route
from image_pipeline.uploads import Upload

# A cutout route's claim: the value CharaForge's UI already shows a spinner for while the background is removed.
REMOVING_BACKGROUND = "removing-background"
FINALIZING = "finalizing"
COMPLETE = "complete"
FAILED = "failed"
SETTLED = (COMPLETE, FAILED)

# A field update's value: what Firestore stores (maps, lists, scalars) or its server time.
FieldValue = object
Writes = dict[str, FieldValue]


class SourceRecord(TypedDict):
    """`{field}.source`: the event's facts, plus what decoding found once it has run."""

    path: str
    generation: str  # a string: generations exceed what JavaScript numbers hold exactly
    contentType: str | None
    bytes: int
    format: str | None
    width: int | None
    height: int | None


class FormatRecord(TypedDict):
    """`variants.{name}.formats.{format}`: one stored object."""

    path: str
    url: str
    bytes: int
    contentType: str
    sameAs: NotRequired[str]


class VariantRecord(TypedDict):
    """`variants.{name}`: the primary format's object at the top, every format under `formats`."""

    path: str
    url: str
    width: int
    height: int
    bytes: int
    contentType: str
    formats: dict[str, FormatRecord]
    sameAs: NotRequired[str]


class Manifest(TypedDict):
    """The whole map at `{field}`, replaced at once so that no field of an older result survives."""

    status: str
    source: SourceRecord
    variants: dict[str, VariantRecord]
    srcset: dict[str, str]
    placeholder: dict[str, str] | None
    error: dict[str, str] | None
    updatedAt: ServerTime
    # Present on a cutout route only: null until the cutout is made (and on failure).
    cutout: NotRequired[dict[str, object] | None]


@dataclass(frozen=True)
class StoredImage:
    """One variant in one format as stored: its object, download token and size, and the variant it repeats."""

    path: str
    token: str
    width: int
    height: int
    bytes: int
    content_type: str
    same_as: str | None = None

    def repeating(self, larger: str) -> StoredImage:
        """This object recorded for a smaller variant, which repeats `larger` (or what `larger` itself repeats)."""
        return replace(self, same_as=self.same_as or larger)


# variant name -> format -> what is stored for it, in the route's variant and format order.
StoredVariants = dict[str, dict[str, StoredImage]]


def source_record(upload: Upload, facts: SourceFacts | None = None) -> SourceRecord:
    """`{field}.source` for `upload`."""
    return {
        "path": upload.name,
        "generation": str(upload.generation),
        "contentType": upload.content_type,
        "bytes": upload.size,
        "format": facts.format if facts else None,
        "width": facts.width if facts else None,
        "height": facts.height if facts else None,
    }


def claim_writes(upload: Upload) -> Writes:
    """Show the spinner and claim the result for this generation ('removing-background' first on a cutout route)."""
    status = FINALIZING if upload.route.cutout is None else REMOVING_BACKGROUND
    return _with_mirror(upload.route, _manifest(upload.route, status, source_record(upload)), ready=False)


def finalizing_writes(route: Route) -> Writes:
    """Move an open cutout claim on to 'finalizing' (the mask is applied), leaving the rest of the manifest."""
    writes: Writes = {f"{route.field}.status": FINALIZING, f"{route.field}.updatedAt": SERVER_TIME}
    if route.mirror.status is not None:
        writes[route.mirror.status] = FINALIZING
    return writes


def completion_writes(upload: Upload, processed: ProcessedImage, stored: StoredVariants, urls: UrlRules) -> Writes:
    """The completed result; the app shows the largest variant in the primary format."""
    route = upload.route
    bucket_urls = _Urls(urls, upload.bucket)
    primary = route.imaging.primary.format.value
    manifest = _manifest(route, COMPLETE, source_record(upload, processed.source))
    manifest["variants"] = {name: variant_record(formats, primary, bucket_urls) for name, formats in stored.items()}
    manifest["srcset"] = srcsets(stored, route.imaging.largest_variant.name, bucket_urls)
    if processed.placeholder is not None:  # every route of ours asks for one; extension routes write no manifest
        manifest["placeholder"] = processed.placeholder.as_record()
    if route.cutout is not None and processed.cutout is not None:
        manifest["cutout"] = dict(processed.cutout.as_record())
    url = bucket_urls.of(stored[route.imaging.largest_variant.name][primary])
    return _with_mirror(route, manifest, ready=True, url=url)


def failure_writes(upload: Upload, failure: PermanentError) -> Writes:
    """A failed result: no image URL, the error's code and message."""
    manifest = _manifest(upload.route, FAILED, source_record(upload))
    manifest["error"] = failure.as_record()
    return _with_mirror(upload.route, manifest, ready=False, url=None)


class _Urls:
    """The URLs of one upload's outputs, by the deployment's URL rules."""

    def __init__(self, rules: UrlRules, bucket: str) -> None:
        self._rules = rules
        self._bucket = bucket

    def of(self, image: StoredImage) -> str:
        return self._rules.url(self._bucket, image.path, image.token)


def _manifest(route: Route, status: str, source: SourceRecord) -> Manifest:
    manifest: Manifest = {
        "status": status,
        "source": source,
        "variants": {},
        "srcset": {},
        "placeholder": None,
        "error": None,
        "updatedAt": SERVER_TIME,
    }
    if route.cutout is not None:
        manifest["cutout"] = None
    return manifest


# The mirrored URL left as it is: a claim keeps the previous image showing until the new one is ready.
_KEEP_URL = object()


def _with_mirror(route: Route, manifest: Manifest, ready: bool, url: object = _KEEP_URL) -> Writes:
    """The manifest at `{field}` and the mirrored fields (`url`: a URL, None or _KEEP_URL), in one transaction."""
    writes: Writes = {}
    mirror = route.mirror
    if mirror.status is not None:
        writes[mirror.status] = manifest["status"]
    if mirror.ready is not None:
        writes[mirror.ready] = ready
    if mirror.url is not None and url is not _KEEP_URL:
        writes[mirror.url] = url
    writes[route.field] = manifest
    return writes


def variant_record(formats: Mapping[str, StoredImage], primary: str, urls: _Urls) -> VariantRecord:
    """`variants.{name}`."""
    main = formats[primary]
    record: VariantRecord = {
        "path": main.path,
        "url": urls.of(main),
        "width": main.width,
        "height": main.height,
        "bytes": main.bytes,
        "contentType": main.content_type,
        "formats": {name: _format_record(stored, urls) for name, stored in formats.items()},
    }
    if main.same_as is not None:
        record["sameAs"] = main.same_as
    return record


def _format_record(image: StoredImage, urls: _Urls) -> FormatRecord:
    record: FormatRecord = {
        "path": image.path,
        "url": urls.of(image),
        "bytes": image.bytes,
        "contentType": image.content_type,
    }
    if image.same_as is not None:
        record["sameAs"] = image.same_as
    return record


def srcsets(stored: StoredVariants, largest: str, urls: _Urls) -> dict[str, str]:
    """Per format, `"URL 256w, URL 1024w"`: ascending, one per distinct stored width, the largest's aspect only."""
    reference = next(iter(stored[largest].values()))
    result = {}
    for output_format in stored[largest]:
        widths: dict[int, str] = {}
        for formats in stored.values():
            image = formats[output_format]
            if _same_aspect(image, reference):
                widths.setdefault(image.width, urls.of(image))
        result[output_format] = ", ".join(f"{widths[width]} {width}w" for width in sorted(widths))
    return result


def _same_aspect(image: StoredImage, reference: StoredImage) -> bool:
    # Sizes are rounded to whole pixels: equal aspect means within one pixel of the reference's shape.
    return abs(image.width * reference.height - image.height * reference.width) <= max(
        reference.width, reference.height
    )


# Reading a stored document. Documents come from Firestore as nested maps of unknown shape: every reader checks.


def field_value(document: Mapping[str, object] | None, path: str) -> object:
    """A nested field by dotted path, or None when the document or any part is missing."""
    value: object = document
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class Recorded:
    """What a document records for a route: the manifest's status, generation and error, as far as they are there."""

    status: str | None
    generation: int | None
    error_code: str | None
    error_message: str | None
    paths: frozenset[str]  # every object the manifest names (each variant's and each format's `path`)

    @property
    def settled(self) -> bool:
        """Whether the recorded generation has a final result."""
        return self.status in SETTLED


def read(document: Mapping[str, object] | None, route: Route) -> Recorded:
    """The facts `document` records at `route.field` (all None/empty when it holds no manifest)."""
    manifest = field_value(document, route.field)
    manifest = manifest if isinstance(manifest, Mapping) else {}
    status = manifest.get("status")
    if status is None and route.mirror.status is not None:
        # Documents settled before the manifest had a status keep it in the mirrored field only.
        status = field_value(document, route.mirror.status)
    error = manifest.get("error")
    error = error if isinstance(error, Mapping) else {}
    return Recorded(
        status=status if isinstance(status, str) else None,
        generation=_generation(field_value(manifest, "source.generation")),
        error_code=_text(error.get("code")),
        error_message=_text(error.get("message")),
        paths=frozenset(_referenced_paths(manifest)),
    )


def _generation(value: object) -> int | None:
    """A recorded generation, compared as a number (stored as a string; an int written by hand counts too)."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    return int(text) if text.isdigit() else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _referenced_paths(manifest: Mapping[str, object]) -> set[str]:
    variants = manifest.get("variants")
    if not isinstance(variants, Mapping):
        return set()
    entries: list[object] = []
    for variant in variants.values():
        if isinstance(variant, Mapping):
            entries.append(variant)
            formats = variant.get("formats")
            entries.extend(formats.values() if isinstance(formats, Mapping) else ())
    return {path for entry in entries if isinstance(entry, Mapping) and isinstance(path := entry.get("path"), str)}
