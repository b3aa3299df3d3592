"""The use case: one source upload becomes variants in storage and a manifest in the route's document.

Depends only on the ports; the imaging core is passed in, so that nothing heavy is imported here.
Every document write goes through a guard on the recorded generation, so duplicate, late and
out-of-order deliveries can never regress a result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from image_pipeline import manifest
from image_pipeline.errors import DocumentNotYetCreated, PermanentError, RejectionCode
from image_pipeline.manifest import StoredImage, StoredVariants
from image_pipeline.model_files import LoadedCutout
from image_pipeline.options import CutoutSpec, ImagingOptions
from image_pipeline.policy import Policy
from image_pipeline.ports import Decision, DocumentStore, EventPublisher, ObjectStore, Outcome
from image_pipeline.results import EncodedImage, ProcessedImage, RenderedVariant
from image_pipeline.routes import DeleteOriginal, MissingDocument
from image_pipeline.uploads import Upload

if TYPE_CHECKING:
    from image_pipeline.extension.resize import ExtensionTrace

Document = Mapping[str, object]
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
    """What the use cases talk to: the ports, the imaging core, a clock and the background removal."""

    objects: ObjectStore
    documents: DocumentStore
    make_variants: MakeVariants
    now: Callable[[], datetime]
    cutouts: Cutouts | None = None
    events: EventPublisher | None = None  # only where an extension route publishes its events


@dataclass
class Trace:
    """Where an event got to, for the summary log line (also when it raises)."""

    stage: str = "parse"
    route: str | None = None
    error: Mapping[str, str] | None = None
    decoder_warnings: int = 0
    # The extension routes that handled the event, by name (they are traced apart: each sees every event).
    extensions: dict[str, ExtensionTrace] = field(default_factory=dict)


def handle_upload(upload: Upload, policy: Policy, deps: Dependencies, trace: Trace, reprocess: bool = False) -> Outcome:
    """Process one upload; raise to have the event redelivered, until the retry window is over.

    `reprocess` redoes a generation whose result is already settled (a forced backfill).
    """
    try:
        return _claim_and_produce(upload, policy, deps, trace, reprocess)
    except DocumentNotYetCreated:
        raise
    except Exception as error:
        if event_age_s(upload, deps.now) < policy.retry_window_s:
            raise
        # The platform would keep redelivering for a day; record a final state so the UI stops waiting.
        message = f"gave up after {policy.retry_window_s} s of retries; last error: {type(error).__name__}: {error}"
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


def _claim_and_produce(upload: Upload, policy: Policy, deps: Dependencies, trace: Trace, reprocess: bool) -> Outcome:
    """Claim the document (or record 'failed' for an event-level problem), then produce the result.

    A cutout route's model is loaded first: a model that cannot be used raises before anything is written.
    """
    early_failure = check_before_download(upload, upload.route.imaging)
    cutout = _load_cutout(upload, deps, trace) if early_failure is None else None
    trace.stage = "claim"
    claim = deps.documents.transact(upload.document, partial(decide_claim, upload, early_failure, reprocess=reprocess))
    if claim.ends is Outcome.DOCUMENT_MISSING and event_age_s(upload, deps.now) < policy.max_event_age_s:
        raise DocumentNotYetCreated(f"{upload.document} does not exist yet")
    if claim.ends is not None:
        return claim.ends
    if early_failure is not None:
        trace.error = early_failure.as_record()
        return Outcome.FAILED
    try:
        return _produce(upload, policy, deps, trace, cutout)
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
    upload: Upload, policy: Policy, deps: Dependencies, trace: Trace, cutout: LoadedCutout | None = None
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
    stored = store_variants(upload, processed.variants, deps.objects)
    trace.stage = "record"
    writes = manifest.completion_writes(upload, processed, stored, policy.urls)
    decision = deps.documents.transact(upload.document, partial(decide_settle, upload, writes))
    if decision.ends is not None:
        return decision.ends
    if upload.route.delete_original is DeleteOriginal.ON_SUCCESS:
        trace.stage = "delete_original"
        deps.objects.delete(upload.bucket, upload.name, upload.generation)
    return Outcome.COMPLETE


def store_variants(upload: Upload, variants: tuple[RenderedVariant, ...], objects: ObjectStore) -> StoredVariants:
    """Write every variant in every format, largest first; one with more bytes than a larger one is not stored.

    Such a variant repeats the larger variant's object instead (firebase/extensions#605): a thumbnail must never
    cost more to download than the bigger image. Not on a route whose names have no {generation}: there every name
    must hold the latest upload's image, since clients may build the names themselves, and a name left unwritten
    would keep the previous upload's.
    """
    stored: StoredVariants = {variant.name: {} for variant in variants}
    by_size = sorted(variants, key=lambda variant: variant.width * variant.height, reverse=True)
    never_bigger = upload.route.names.has_generation
    for index, variant in enumerate(by_size):
        for encoded in variant.encodings:
            larger = _smaller_larger_encoding(by_size[:index], variant, encoded) if never_bigger else None
            if larger is not None:
                stored[variant.name][encoded.format] = stored[larger.name][encoded.format].repeating(larger.name)
            else:
                stored[variant.name][encoded.format] = _store(upload, variant, encoded, objects)
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


def _store(upload: Upload, variant: RenderedVariant, encoded: EncodedImage, objects: ObjectStore) -> StoredImage:
    """Write one encoding (or find it written by an earlier attempt) and describe it.

    Names with {generation} are new for every upload, so an existing object is this generation's: kept. Names without
    it are the previous upload's outputs too, which this generation replaces (and a retry of it keeps).
    """
    path = upload.output_path(variant.name, encoded.extension)
    route = upload.route
    if route.names.has_generation:
        token = objects.create(upload.bucket, path, encoded.data, encoded.content_type, route.cache_control)
    else:
        token = objects.create_or_replace(
            upload.bucket, path, encoded.data, encoded.content_type, route.cache_control, upload.generation
        )
    return StoredImage(path, token, variant.width, variant.height, encoded.bytes, encoded.content_type)


def _record_finalizing(upload: Upload, deps: Dependencies) -> None:
    """Once the mask is applied: 'finalizing', in one guarded write (nothing if the document has moved on)."""
    deps.documents.transact(upload.document, partial(decide_finalizing, upload))


def _record_failure(upload: Upload, failure: PermanentError, deps: Dependencies, trace: Trace) -> Outcome:
    """Record 'failed' with the error, unless a guard says the document has moved on."""
    trace.error = failure.as_record()
    writes = manifest.failure_writes(upload, failure)
    decision = deps.documents.transact(upload.document, partial(decide_settle, upload, writes))
    return decision.ends or Outcome.FAILED


def guard(document: Document | None, upload: Upload) -> Outcome | None:
    """How the event ends without touching the document, or None when it may go on."""
    route = upload.route
    if document is None:
        return None if route.missing is MissingDocument.CREATE else Outcome.DOCUMENT_MISSING
    for path, template in route.require.items():
        if manifest.field_value(document, path) != template.render(upload.values):
            return Outcome.NOT_OWNER
    recorded = manifest.read(document, route)
    if recorded.generation is None or recorded.generation < upload.generation:
        return None
    if recorded.generation > upload.generation:
        return Outcome.SUPERSEDED
    return Outcome.DUPLICATE if recorded.settled else None


def decide_claim(
    upload: Upload, early_failure: PermanentError | None, document: Document | None, reprocess: bool = False
) -> Decision:
    """Claim the document for this generation: 'finalizing', or straight to 'failed' for an event-level problem."""
    ends = guard(document, upload)
    # A forced reprocess claims a settled generation like a first delivery; the settle step then sees 'finalizing'.
    redo = reprocess and ends is Outcome.DUPLICATE
    if ends is not None and not redo:
        return Decision(ends)
    if early_failure is not None:
        return Decision(writes=manifest.failure_writes(upload, early_failure))
    if not redo and _claimed_already(document, upload):
        return Decision()
    return Decision(writes=manifest.claim_writes(upload))


def decide_finalizing(upload: Upload, document: Document | None) -> Decision:
    """Move this generation's open claim from 'removing-background' to 'finalizing'; anything else is left alone."""
    ends = guard(document, upload)
    if ends is not None:
        return Decision(ends)
    if not _claimed_already(document, upload):
        return Decision()  # the document no longer records this generation (e.g. it was reset): nothing to move
    return Decision(writes=manifest.finalizing_writes(upload.route))


def decide_settle(upload: Upload, writes: manifest.Writes, document: Document | None) -> Decision:
    """Record a final result for this generation unless it is settled already or superseded."""
    ends = guard(document, upload)
    return Decision(ends) if ends is not None else Decision(writes=writes)


def _claimed_already(document: Document | None, upload: Upload) -> bool:
    """Whether an earlier attempt claimed this generation and has not settled it (the claim is not repeated)."""
    return document is not None and manifest.read(document, upload.route).generation == upload.generation
