"""The use case: one source upload becomes variants in storage and a result in the character document.

Depends only on the ports; the imaging core is passed in, so that nothing heavy is imported here.
Every document write goes through a guard on the recorded generation, so duplicate, late and
out-of-order deliveries can never regress a result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import partial
from typing import Any

from image_pipeline.errors import DocumentNotYetCreated, PermanentError, RejectionCode
from image_pipeline.objects import Upload, download_url, output_path
from image_pipeline.ports import SERVER_TIME, CharacterStore, Decision, ObjectStore, Verdict
from image_pipeline.settings import DeleteOriginal, ImagingOptions, Settings

FINALIZING = "finalizing"
COMPLETE = "complete"
FAILED = "failed"
_SETTLED = (COMPLETE, FAILED)


class Outcome(str, Enum):
    """How an event was acknowledged; the `outcome` of the summary log line."""

    SKIPPED = "skipped"
    COMPLETE = "complete"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"
    NOT_OWNER = "not_owner"
    DOCUMENT_MISSING = "document_missing"


_OUTCOME_OF_VERDICT = {
    Verdict.MISSING: Outcome.DOCUMENT_MISSING,
    Verdict.NOT_OWNER: Outcome.NOT_OWNER,
    Verdict.SUPERSEDED: Outcome.SUPERSEDED,
    Verdict.DONE: Outcome.DUPLICATE,
}


@dataclass(frozen=True)
class Dependencies:
    """What the use case talks to: the two ports, the imaging core and a clock."""

    objects: ObjectStore
    characters: CharacterStore
    process: Callable[[bytes, ImagingOptions], Any]
    now: Callable[[], datetime]


@dataclass
class Trace:
    """Where an event got to, for the summary log line (also when it raises)."""

    stage: str = "parse"
    error: Mapping[str, str] | None = None


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
    """Mark the document 'finalizing' (or 'failed' for an event-level problem), then produce the result."""
    trace.stage = "claim"
    early_failure = check_before_download(upload, settings.imaging)
    decide = partial(decide_claim, upload, early_failure, reprocess=reprocess)
    claim = deps.characters.transact(upload.character_id, decide)
    if claim.verdict is Verdict.MISSING:
        if event_age_s(upload, deps.now) < settings.max_event_age_s:
            raise DocumentNotYetCreated(f"{settings.collection}/{upload.character_id} does not exist yet")
        return Outcome.DOCUMENT_MISSING
    if claim.verdict in _OUTCOME_OF_VERDICT:
        return _OUTCOME_OF_VERDICT[claim.verdict]
    if early_failure is not None:
        trace.error = early_failure.as_record()
        return Outcome.FAILED
    try:
        return _produce(upload, settings, deps, trace)
    except PermanentError as rejection:
        return _record_failure(upload, rejection, deps, trace)


def _produce(upload: Upload, settings: Settings, deps: Dependencies, trace: Trace) -> Outcome:
    """Download, process, upload the variants and record 'complete'."""
    trace.stage = "download"
    data = deps.objects.download(upload.bucket, upload.name, upload.generation)
    if data is None:
        raise PermanentError(
            RejectionCode.SOURCE_GONE, f"generation {upload.generation} of the upload no longer exists"
        )
    trace.stage = "process"
    processed = deps.process(data, settings.imaging)
    trace.stage = "upload"
    variants = {variant.name: _store_variant(upload, variant, settings, deps) for variant in processed.variants}
    trace.stage = "record"
    record = completion_writes(upload, processed, variants, settings)
    decision = deps.characters.transact(upload.character_id, partial(decide_settle, upload, record))
    if decision.verdict is not Verdict.WRITTEN:
        return _OUTCOME_OF_VERDICT[decision.verdict]
    if settings.delete_original is DeleteOriginal.ON_SUCCESS:
        trace.stage = "delete_original"
        deps.objects.delete(upload.bucket, upload.name, upload.generation)
    return Outcome.COMPLETE


def _store_variant(upload: Upload, variant: Any, settings: Settings, deps: Dependencies) -> dict[str, Any]:
    """Write one variant (or find it written by an earlier attempt) and describe it for the document."""
    path = output_path(upload, variant.name, variant.extension, settings)
    token = deps.objects.create(upload.bucket, path, variant.data, variant.content_type, settings.cache_control)
    return {
        "path": path,
        "url": download_url(upload.bucket, path, token, settings),
        "width": variant.width,
        "height": variant.height,
        "bytes": variant.bytes,
        "contentType": variant.content_type,
    }


def _record_failure(upload: Upload, failure: PermanentError, deps: Dependencies, trace: Trace) -> Outcome:
    """Record 'failed' with the error, unless a guard says the document has moved on."""
    trace.error = failure.as_record()
    decision = deps.characters.transact(upload.character_id, partial(decide_settle, upload, failure_writes(upload, failure)))
    return Outcome.FAILED if decision.verdict is Verdict.WRITTEN else _OUTCOME_OF_VERDICT[decision.verdict]


def guard(document: Mapping[str, Any] | None, upload: Upload) -> Verdict | None:
    """Whether this upload may touch the document; None means it may, and nothing is recorded for it yet."""
    if document is None:
        return Verdict.MISSING
    if _field(document, "meta.userId") != upload.uid:
        return Verdict.NOT_OWNER
    recorded = _recorded_generation(document)
    if recorded is None or recorded < upload.generation:
        return None
    if recorded > upload.generation:
        return Verdict.SUPERSEDED
    if _field(document, "visuals.showcaseProcessingStatus") in _SETTLED:
        return Verdict.DONE
    return Verdict.IN_PROGRESS


def decide_claim(
    upload: Upload, early_failure: PermanentError | None, document: Mapping[str, Any] | None, reprocess: bool = False
) -> Decision:
    """Claim the document for this generation: 'finalizing', or straight to 'failed' for an event-level problem."""
    verdict = guard(document, upload)
    if reprocess and verdict is Verdict.DONE:
        # Claimed like a first delivery; the settle step then sees 'finalizing' for this generation.
        verdict = None
    if verdict not in (None, Verdict.IN_PROGRESS):
        return Decision(verdict)
    if early_failure is not None:
        return Decision(Verdict.WRITTEN, failure_writes(upload, early_failure))
    if verdict is Verdict.IN_PROGRESS:
        return Decision(Verdict.IN_PROGRESS)
    return Decision(Verdict.WRITTEN, finalizing_writes(upload))


def decide_settle(upload: Upload, writes: Mapping[str, Any], document: Mapping[str, Any] | None) -> Decision:
    """Record a final result for this generation unless it is settled already or superseded."""
    verdict = guard(document, upload)
    if verdict not in (None, Verdict.IN_PROGRESS):
        return Decision(verdict)
    return Decision(Verdict.WRITTEN, writes)


def _recorded_generation(document: Mapping[str, Any]) -> int | None:
    """The source generation the document's result belongs to, compared as a number."""
    value = _field(document, "visuals.showcase.source.generation")
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    return int(text) if text.isdigit() else None


def _field(document: Mapping[str, Any], path: str) -> Any:
    """A nested field by dotted path, or None when any part is missing."""
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def source_record(upload: Upload, facts: Any = None) -> dict[str, Any]:
    """`visuals.showcase.source`: the event's facts, plus what decoding found once it has run."""
    return {
        "path": upload.name,
        "generation": str(upload.generation),
        "contentType": upload.content_type,
        "bytes": upload.size,
        "format": getattr(facts, "format", None),
        "width": getattr(facts, "width", None),
        "height": getattr(facts, "height", None),
    }


def finalizing_writes(upload: Upload) -> dict[str, Any]:
    """Field updates that show the spinner and claim the result for this generation."""
    return {
        "visuals.showcaseProcessingStatus": FINALIZING,
        "visuals.isShowcaseProcessed": False,
        "visuals.showcase": _showcase(source_record(upload), {}, None, None),
    }


def completion_writes(
    upload: Upload, processed: Any, variants: Mapping[str, Mapping[str, Any]], settings: Settings
) -> dict[str, Any]:
    """Field updates for a completed result; the app shows the largest variant."""
    return {
        "visuals.showcaseProcessingStatus": COMPLETE,
        "visuals.isShowcaseProcessed": True,
        "visuals.showcaseImageUrl": variants[_largest(variants, settings)]["url"],
        "visuals.showcase": _showcase(
            source_record(upload, processed.source), dict(variants), processed.placeholder.as_record(), None
        ),
    }


def failure_writes(upload: Upload, failure: PermanentError) -> dict[str, Any]:
    """Field updates for a failed result: no image URL, the error's code and message."""
    return {
        "visuals.showcaseProcessingStatus": FAILED,
        "visuals.isShowcaseProcessed": False,
        "visuals.showcaseImageUrl": None,
        "visuals.showcase": _showcase(source_record(upload), {}, None, failure.as_record()),
    }


def _showcase(source: dict, variants: dict, placeholder: dict | None, error: Mapping | None) -> dict[str, Any]:
    """The whole `visuals.showcase` map, replaced at once so no field of an older result survives."""
    return {
        "source": source,
        "variants": variants,
        "placeholder": placeholder,
        "error": dict(error) if error else None,
        "updatedAt": SERVER_TIME,
    }


def _largest(variants: Mapping[str, Mapping[str, Any]], settings: Settings) -> str:
    """The configured largest variant's name, or the one with the most pixels if it is absent."""
    name = settings.imaging.largest_variant.name
    if name in variants:
        return name
    return max(variants, key=lambda key: variants[key]["width"] * variants[key]["height"])
