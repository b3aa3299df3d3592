"""The use case: one source upload becomes variants in storage and a manifest in the route's document.

Depends only on the ports; the imaging core is passed in, so that nothing heavy is imported here.
Every document write goes through a guard on the recorded generation, so duplicate, late and
out-of-order deliveries can never regress a result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from image_pipeline.errors import DocumentNotYetCreated, PermanentError, RejectionCode
from image_pipeline.models import LoadedCutout
from image_pipeline.objects import Upload, download_url, output_path
from image_pipeline.options import CutoutSpec, ImagingOptions
from image_pipeline.ports import SERVER_TIME, Decision, DocumentStore, ObjectStore, Outcome
from image_pipeline.results import EncodedImage, ProcessedImage, RenderedVariant, SourceFacts
from image_pipeline.routes import DeleteOriginal, MissingDocument, Route
from image_pipeline.settings import Settings

# A cutout route's claim: the value CharaForge's UI already shows a spinner for while the background is removed.
REMOVING_BACKGROUND = "removing-background"
FINALIZING = "finalizing"
COMPLETE = "complete"
FAILED = "failed"
_SETTLED = (COMPLETE, FAILED)

MakeVariants = Callable[[bytes, ImagingOptions], ProcessedImage]
# (data, options, the loaded cutout, called once the mask is applied) -> the variants made from the cut-out.
MakeCutoutVariants = Callable[[bytes, ImagingOptions, LoadedCutout, Callable[[], None]], ProcessedImage]


@dataclass(frozen=True)
class Cutouts:
    """Background removal: the instance's model cache and the imaging core run with its cutout step."""

    # (the route's cutout, the event's bucket) -> the loaded model; raises ModelUnusable (or TransientError).
    load: Callable[[CutoutSpec, str], LoadedCutout]
    make_variants: MakeCutoutVariants


@dataclass(frozen=True)
class Dependencies:
    """What the use case talks to: the two ports, the imaging core, a clock and the background removal."""

    objects: ObjectStore
    documents: DocumentStore
    make_variants: MakeVariants
    now: Callable[[], datetime]
    cutouts: Cutouts | None = None


@dataclass
class Trace:
    """Where an event got to, for the summary log line (also when it raises)."""

    stage: str = "parse"
    route: str | None = None
    error: Mapping[str, str] | None = None
    decoder_warnings: int = 0


def handle_upload(
    upload: Upload, settings: Settings, deps: Dependencies, trace: Trace, reprocess: bool = False
) -> Outcome:
    """Process one upload; raise to have the event redelivered, until the retry window is over.

    `reprocess` redoes a generation whose result is already settled (a forced backfill).
    """
    try:
        return _claim_and_produce(upload, settings, deps, trace, reprocess)
    except DocumentNotYetCreated:
        raise
    except Exception as error:
        if event_age_s(upload, deps.now) < settings.retry_window_s:
            raise
        # The platform would keep redelivering for a day; record a final state so the UI stops waiting.
        message = f"gave up after {settings.retry_window_s} s of retries; last error: {type(error).__name__}: {error}"
        return _record_failure(upload, PermanentError(RejectionCode.RETRIES_EXHAUSTED, message[:500]), deps, trace)


def event_age_s(upload: Upload, now: Callable[[], datetime]) -> float:
    """Seconds since the event happened."""
    return (now() - upload.event_time).total_seconds()


def check_before_download(upload: Upload, options: ImagingOptions) -> PermanentError | None:
    """Problems visible in the event itself, so that nothing is downloaded for them."""
    encoding = (upload.content_encoding or "identity").lower()
    if encoding != "identity":
        return PermanentError(
            RejectionCode.UNSUPPORTED_ENCODING,
            f"the object is stored with Content-Encoding {upload.content_encoding!r}; upload the image itself",
        )
    if upload.size > options.max_input_bytes:
        return PermanentError(
            RejectionCode.TOO_LARGE, f"the upload is {upload.size} bytes, over the {options.max_input_bytes}-byte limit"
        )
    return None


def _claim_and_produce(
    upload: Upload, settings: Settings, deps: Dependencies, trace: Trace, reprocess: bool
) -> Outcome:
    """Claim the document (or record 'failed' for an event-level problem), then produce the result.

    A cutout route's model is loaded first: a model that cannot be used raises before anything is written.
    """
    early_failure = check_before_download(upload, upload.route.imaging)
    cutout = _load_cutout(upload, deps, trace) if early_failure is None else None
    trace.stage = "claim"
    claim = deps.documents.transact(upload.document, partial(decide_claim, upload, early_failure, reprocess=reprocess))
    if claim.ends is Outcome.DOCUMENT_MISSING and event_age_s(upload, deps.now) < settings.max_event_age_s:
        raise DocumentNotYetCreated(f"{upload.document} does not exist yet")
    if claim.ends is not None:
        return claim.ends
    if early_failure is not None:
        trace.error = early_failure.as_record()
        return Outcome.FAILED
    try:
        return _produce(upload, settings, deps, trace, cutout)
    except PermanentError as rejection:
        return _record_failure(upload, rejection, deps, trace)


def _load_cutout(upload: Upload, deps: Dependencies, trace: Trace) -> LoadedCutout | None:
    """The route's loaded model (fetched and verified by the first event of the instance), None without a cutout."""
    if upload.route.cutout is None:
        return None
    trace.stage = "model"
    if deps.cutouts is None:
        raise RuntimeError(f"route {upload.route.name!r} has a cutout but no cutout runner was connected")
    return deps.cutouts.load(upload.route.cutout, upload.bucket)


def _produce(
    upload: Upload, settings: Settings, deps: Dependencies, trace: Trace, cutout: LoadedCutout | None = None
) -> Outcome:
    """Download, process, upload the variants and record 'complete'."""
    trace.stage = "download"
    data = deps.objects.download(upload.bucket, upload.name, upload.generation)
    if data is None:
        raise PermanentError(
            RejectionCode.SOURCE_GONE, f"generation {upload.generation} of the upload no longer exists"
        )
    trace.stage = "process"
    if cutout is not None and deps.cutouts is not None:
        cut = partial(_record_finalizing, upload, deps)
        processed = deps.cutouts.make_variants(data, upload.route.imaging, cutout, cut)
    else:
        processed = deps.make_variants(data, upload.route.imaging)
    trace.decoder_warnings = processed.warnings.count
    trace.stage = "upload"
    stored = store_variants(upload, processed.variants, settings, deps.objects)
    trace.stage = "record"
    writes = completion_writes(upload, processed, stored)
    decision = deps.documents.transact(upload.document, partial(decide_settle, upload, writes))
    if decision.ends is not None:
        return decision.ends
    if upload.route.delete_original is DeleteOriginal.ON_SUCCESS:
        trace.stage = "delete_original"
        deps.objects.delete(upload.bucket, upload.name, upload.generation)
    return Outcome.COMPLETE


@dataclass(frozen=True)
class StoredImage:
    """One variant in one format as stored: its object, URL and size, and the variant it repeats if any."""

    path: str
    url: str
    width: int
    height: int
    bytes: int
    content_type: str
    same_as: str | None = None

    def as_record(self) -> dict[str, Any]:
        """The `formats.{format}` entry of the manifest."""
        record: dict[str, Any] = {
            "path": self.path,
            "url": self.url,
            "bytes": self.bytes,
            "contentType": self.content_type,
        }
        if self.same_as is not None:
            record["sameAs"] = self.same_as
        return record


# variant name -> format -> what is stored for it, in the route's variant and format order.
StoredVariants = dict[str, dict[str, StoredImage]]


def store_variants(
    upload: Upload, variants: tuple[RenderedVariant, ...], settings: Settings, objects: ObjectStore
) -> StoredVariants:
    """Write every variant in every format, largest first; one with more bytes than a larger one is not stored.

    Such a variant repeats the larger variant's object instead (firebase/extensions#605): a thumbnail must never
    cost more to download than the bigger image.
    """
    stored: StoredVariants = {variant.name: {} for variant in variants}
    by_size = sorted(variants, key=lambda variant: variant.width * variant.height, reverse=True)
    for index, variant in enumerate(by_size):
        for encoded in variant.encodings:
            larger = _smaller_larger_encoding(by_size[:index], variant, encoded)
            if larger is not None:
                target = stored[larger.name][encoded.format]
                stored[variant.name][encoded.format] = replace(target, same_as=target.same_as or larger.name)
            else:
                stored[variant.name][encoded.format] = _store(upload, variant, encoded, settings, objects)
    return stored


def _smaller_larger_encoding(
    larger: list[RenderedVariant], variant: RenderedVariant, encoded: EncodedImage
) -> RenderedVariant | None:
    """The nearest strictly larger variant whose encoding in the same format has fewer bytes, if any."""
    area = variant.width * variant.height
    for candidate in reversed(larger):
        same_format = next(item for item in candidate.encodings if item.format == encoded.format)
        if candidate.width * candidate.height > area and same_format.bytes < encoded.bytes:
            return candidate
    return None


def _store(
    upload: Upload, variant: RenderedVariant, encoded: EncodedImage, settings: Settings, objects: ObjectStore
) -> StoredImage:
    """Write one encoding (or find it written by an earlier attempt) and describe it."""
    path = output_path(upload, variant.name, encoded.extension)
    token = objects.create(upload.bucket, path, encoded.data, encoded.content_type, upload.route.cache_control)
    url = download_url(upload.bucket, path, token, settings)
    return StoredImage(path, url, variant.width, variant.height, encoded.bytes, encoded.content_type)


def _record_finalizing(upload: Upload, deps: Dependencies) -> None:
    """Once the mask is applied: 'finalizing', in one guarded write (nothing if the document has moved on)."""
    deps.documents.transact(upload.document, partial(decide_finalizing, upload))


def _record_failure(upload: Upload, failure: PermanentError, deps: Dependencies, trace: Trace) -> Outcome:
    """Record 'failed' with the error, unless a guard says the document has moved on."""
    trace.error = failure.as_record()
    decision = deps.documents.transact(upload.document, partial(decide_settle, upload, failure_writes(upload, failure)))
    return decision.ends or Outcome.FAILED


def guard(document: Mapping[str, Any] | None, upload: Upload) -> Outcome | None:
    """How the event ends without touching the document, or None when it may go on."""
    route = upload.route
    if document is None:
        return None if route.missing is MissingDocument.CREATE else Outcome.DOCUMENT_MISSING
    for path, template in route.require.items():
        if field_value(document, path) != template.render(upload.values):
            return Outcome.NOT_OWNER
    recorded = recorded_generation(document, route)
    if recorded is None or recorded < upload.generation:
        return None
    if recorded > upload.generation:
        return Outcome.SUPERSEDED
    return Outcome.DUPLICATE if recorded_status(document, route) in _SETTLED else None


def decide_claim(
    upload: Upload, early_failure: PermanentError | None, document: Mapping[str, Any] | None, reprocess: bool = False
) -> Decision:
    """Claim the document for this generation: 'finalizing', or straight to 'failed' for an event-level problem."""
    ends = guard(document, upload)
    # A forced reprocess claims a settled generation like a first delivery; the settle step then sees 'finalizing'.
    redo = reprocess and ends is Outcome.DUPLICATE
    if ends is not None and not redo:
        return Decision(ends)
    if early_failure is not None:
        return Decision(writes=failure_writes(upload, early_failure))
    if not redo and _claimed_already(document, upload):
        return Decision()
    return Decision(writes=finalizing_writes(upload))


def decide_finalizing(upload: Upload, document: Mapping[str, Any] | None) -> Decision:
    """Move this generation's open claim from 'removing-background' to 'finalizing'; anything else is left alone."""
    ends = guard(document, upload)
    if ends is not None:
        return Decision(ends)
    if not _claimed_already(document, upload):
        return Decision()  # the document no longer records this generation (e.g. it was reset): nothing to move
    route = upload.route
    writes: dict[str, Any] = {f"{route.field}.status": FINALIZING, f"{route.field}.updatedAt": SERVER_TIME}
    if route.mirror.status is not None:
        writes[route.mirror.status] = FINALIZING
    return Decision(writes=writes)


def decide_settle(upload: Upload, writes: Mapping[str, Any], document: Mapping[str, Any] | None) -> Decision:
    """Record a final result for this generation unless it is settled already or superseded."""
    ends = guard(document, upload)
    return Decision(ends) if ends is not None else Decision(writes=writes)


def _claimed_already(document: Mapping[str, Any] | None, upload: Upload) -> bool:
    """Whether an earlier attempt claimed this generation and has not settled it (the claim is not repeated)."""
    return document is not None and recorded_generation(document, upload.route) == upload.generation


def recorded_generation(document: Mapping[str, Any], route: Route) -> int | None:
    """The source generation the document's result belongs to, compared as a number."""
    value = field_value(document, f"{route.field}.source.generation")
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    return int(text) if text.isdigit() else None


def recorded_status(document: Mapping[str, Any], route: Route) -> Any:
    """The manifest's status; documents settled before the manifest had one keep it in the mirrored field only."""
    status = field_value(document, f"{route.field}.status")
    if status is None and route.mirror.status is not None:
        return field_value(document, route.mirror.status)
    return status


def field_value(document: Mapping[str, Any] | None, path: str) -> Any:
    """A nested field by dotted path, or None when the document or any part is missing."""
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def source_record(upload: Upload, facts: SourceFacts | None = None) -> dict[str, Any]:
    """`{field}.source`: the event's facts, plus what decoding found once it has run."""
    return {
        "path": upload.name,
        "generation": str(upload.generation),
        "contentType": upload.content_type,
        "bytes": upload.size,
        "format": facts.format if facts else None,
        "width": facts.width if facts else None,
        "height": facts.height if facts else None,
    }


def finalizing_writes(upload: Upload) -> dict[str, Any]:
    """Field updates that show the spinner and claim the result for this generation ('removing-background' first
    on a cutout route)."""
    status = FINALIZING if upload.route.cutout is None else REMOVING_BACKGROUND
    manifest = _manifest(status, source_record(upload), cutout=_no_cutout(upload.route))
    return _with_mirror(upload.route, manifest, ready=False)


def completion_writes(upload: Upload, processed: ProcessedImage, stored: StoredVariants) -> dict[str, Any]:
    """Field updates for a completed result; the app shows the largest variant in the primary format."""
    route = upload.route
    primary = route.imaging.primary.format.value
    manifest = _manifest(
        COMPLETE,
        source_record(upload, processed.source),
        variants={name: variant_record(formats, primary) for name, formats in stored.items()},
        srcset=srcsets(stored, route.imaging.largest_variant.name),
        placeholder=processed.placeholder.as_record(),
        cutout=processed.cutout.as_record() if route.cutout is not None and processed.cutout else _no_cutout(route),
    )
    url = stored[route.imaging.largest_variant.name][primary].url
    return _with_mirror(route, manifest, ready=True, url=url)


def failure_writes(upload: Upload, failure: PermanentError) -> dict[str, Any]:
    """Field updates for a failed result: no image URL, the error's code and message."""
    manifest = _manifest(FAILED, source_record(upload), error=failure.as_record(), cutout=_no_cutout(upload.route))
    return _with_mirror(upload.route, manifest, ready=False, url=None)


_KEEP = object()
# `cutout` is left out of the manifest of a route without one.
_ABSENT: Any = object()


def _no_cutout(route: Route) -> Any:
    """`{field}.cutout` before completion and on failure: null on a cutout route, absent otherwise."""
    return _ABSENT if route.cutout is None else None


def _with_mirror(route: Route, manifest: dict[str, Any], ready: bool, url: Any = _KEEP) -> dict[str, Any]:
    """The manifest at `{field}` and the mirrored fields, written in the same transaction."""
    writes: dict[str, Any] = {}
    mirror = route.mirror
    if mirror.status is not None:
        writes[mirror.status] = manifest["status"]
    if mirror.ready is not None:
        writes[mirror.ready] = ready
    if mirror.url is not None and url is not _KEEP:
        writes[mirror.url] = url
    writes[route.field] = manifest
    return writes


def _manifest(
    status: str,
    source: dict[str, Any],
    variants: dict[str, Any] | None = None,
    srcset: dict[str, str] | None = None,
    placeholder: dict[str, str] | None = None,
    error: Mapping[str, str] | None = None,
    cutout: Any = _ABSENT,
) -> dict[str, Any]:
    """The whole manifest map, replaced at once so no field of an older result survives."""
    manifest = {
        "status": status,
        "source": source,
        "variants": variants or {},
        "srcset": srcset or {},
        "placeholder": placeholder,
        "error": dict(error) if error else None,
        "updatedAt": SERVER_TIME,
    }
    if cutout is not _ABSENT:
        manifest["cutout"] = cutout
    return manifest


def variant_record(formats: Mapping[str, StoredImage], primary: str) -> dict[str, Any]:
    """`variants.{name}`: the primary format's object at the top (as before routes), every format under `formats`."""
    main = formats[primary]
    record: dict[str, Any] = {
        "path": main.path,
        "url": main.url,
        "width": main.width,
        "height": main.height,
        "bytes": main.bytes,
        "contentType": main.content_type,
        "formats": {name: stored.as_record() for name, stored in formats.items()},
    }
    if main.same_as is not None:
        record["sameAs"] = main.same_as
    return record


def srcsets(stored: StoredVariants, largest: str) -> dict[str, str]:
    """Per format, `"URL 256w, URL 1024w"`: ascending, one per distinct stored width, the largest's aspect only."""
    reference = next(iter(stored[largest].values()))
    result = {}
    for output_format in stored[largest]:
        widths: dict[int, str] = {}
        for formats in stored.values():
            image = formats[output_format]
            if _same_aspect(image, reference):
                widths.setdefault(image.width, image.url)
        result[output_format] = ", ".join(f"{widths[width]} {width}w" for width in sorted(widths))
    return result


def _same_aspect(image: StoredImage, reference: StoredImage) -> bool:
    # Sizes are rounded to whole pixels: equal aspect means within one pixel of the reference's shape.
    return abs(image.width * reference.height - image.height * reference.width) <= max(
        reference.width, reference.height
    )
