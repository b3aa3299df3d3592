"""The use case of an extension route: one finalize event, handled as the Resize Images extension handled it.

Depends only on the ports, like usecase.py. What differs from the extension, on purpose (docs/migrate-from-resize-
images.md): an outage is retried instead of recorded as a failure; each output is encoded once; nothing is deleted
on an attempt that will be retried; and a redelivered finalize changes nothing.

**Redelivery.** Every output carries `sourceGeneration` (SOURCE_GENERATION_METADATA_KEY), the generation it was made
from. A redelivery finds outputs made from its generation and keeps them (no rewrite, no new token); when every
output is there, and the route's events were published (EVENTS_MARK, set on the first output after onCompletion),
it ends at once as a duplicate. Events that an interrupted attempt published are published again with the same ids
(events.py), so a consumer can drop the repeat by id.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from image_pipeline.errors import PermanentError, RejectionCode, TransientError
from image_pipeline.extension import events
from image_pipeline.extension.metadata import FAILED_COPY_METADATA, object_metadata, output_metadata
from image_pipeline.extension.params import DeleteOriginalFile
from image_pipeline.extension.route import ExtensionRoute, PlannedOutput, ResizePlan
from image_pipeline.logs import log
from image_pipeline.policy import Policy
from image_pipeline.ports import SOURCE_GENERATION_METADATA_KEY, ObjectMetadata, ObjectStore, Outcome, StoredObject
from image_pipeline.results import ProcessedImage
from image_pipeline.uploads import event_moment, parse_digits
from image_pipeline.usecase import Dependencies

LOGGER = logging.getLogger("image_pipeline.extension")
EVENTS_MARK = "resizedImageEventsPublished"


@dataclass(frozen=True)
class Finalize:
    """A finalize event as an extension route reads it: its id and time, and the object resource it carries."""

    event_id: str
    event_time: str | None
    resource: Mapping[str, object]

    @property
    def bucket(self) -> str:
        return str(self.resource.get("bucket") or "")

    @property
    def name(self) -> str:
        return str(self.resource.get("name") or "")

    @property
    def generation(self) -> int | None:
        return parse_digits(self.resource.get("generation"))

    @property
    def size(self) -> int | None:
        return parse_digits(self.resource.get("size"), allow_zero=True)

    @property
    def happened(self) -> datetime:
        """When the upload happened, as the use case of our routes reads it (never in the future)."""
        return event_moment(self.event_time, self.resource)


@dataclass
class ExtensionTrace:
    """Where an extension route got to with one event, for the summary log line."""

    stage: str = "filter"
    outcome: Outcome | None = None
    reason: str | None = None
    error: Mapping[str, str] | None = None
    outputs: dict[str, bool] = field(default_factory=dict)

    def as_record(self) -> dict[str, object]:
        """The route's part of the summary log line."""
        record: dict[str, object] = {"outcome": self.outcome.value if self.outcome else None, "stage": self.stage}
        if self.reason:
            record["reason"] = self.reason
        if self.error:
            record["error"] = dict(self.error)
        failed = [path for path, written in self.outputs.items() if not written]
        if failed:
            record["failedOutputs"] = failed
        return record


def handle_finalize(
    route: ExtensionRoute, finalize: Finalize, policy: Policy, deps: Dependencies, trace: ExtensionTrace
) -> Outcome:
    """Handle one finalize event for one extension route; raise to have it redelivered, until the retry window ends."""
    reason = route.skip_reason(finalize.resource) or _unusable(finalize)
    plan = None if reason else route.plan(finalize.name, str(finalize.resource["contentType"]))
    publish = _Publisher(route, finalize, deps)
    handling = _Handling(route, finalize, deps, trace, publish)
    try:
        return _handle(handling, plan) if plan else _skip(handling, reason)
    except Exception as error:
        if (deps.now() - finalize.happened).total_seconds() < policy.retry_window_s:
            raise
        # The platform would go on redelivering for a day: say it failed, as the extension says it (onError).
        message = f"gave up after {policy.retry_window_s} s of retries; last error: {type(error).__name__}: {error}"
        trace.error = PermanentError(RejectionCode.RETRIES_EXHAUSTED, message[:500]).as_record()
        # The outcome is final now: a channel that still refuses must not keep the event alive.
        if plan is not None:
            publish.best_effort(events.on_error(message))
        publish.best_effort(events.on_completion(_context(finalize)))
        return Outcome.FAILED if plan is not None else Outcome.SKIPPED


@dataclass(frozen=True)
class _Handling:
    """One route's handling of one finalize event: what every step reads, reports to and publishes through."""

    route: ExtensionRoute
    finalize: Finalize
    deps: Dependencies
    trace: ExtensionTrace
    publish: _Publisher


def _skip(handling: _Handling, reason: str | None) -> Outcome:
    """An upload the route does not take: announced (onStart, onCompletion) as the extension announces every one."""
    finalize, publish = handling.finalize, handling.publish
    handling.trace.reason = reason
    publish(events.on_start(finalize.resource))
    publish(events.on_completion(_context(finalize)))
    return Outcome.SKIPPED


def _handle(handling: _Handling, plan: ResizePlan) -> Outcome:
    """An upload the route takes: resized, announced and reported, unless an earlier delivery did all of it."""
    route, finalize, objects, publish = handling.route, handling.finalize, handling.deps.objects, handling.publish
    stored = _read_outputs(finalize, plan, objects)
    if _handled_already(route, finalize, plan, stored):
        handling.trace.stage = "done"
        return Outcome.DUPLICATE
    publish(events.on_start(finalize.resource))
    publish(events.on_start_resize(finalize.resource))
    outcome = _resize(handling, plan, stored)
    handling.trace.stage = "events"
    publish(events.on_completion(_context(finalize)))
    if route.publishing is not None and outcome is Outcome.COMPLETE:
        _mark_events_published(finalize, plan, objects)
    return outcome


def _unusable(finalize: Finalize) -> str | None:
    """Why an event the filters took cannot be handled: the parts of the object resource this needs."""
    if not finalize.bucket or finalize.generation is None or finalize.size is None:
        return "event has no bucket, valid generation or size"
    return None


def _context(finalize: Finalize) -> events.FinalizeContext:
    return events.FinalizeContext.of(finalize.event_id, finalize.event_time, finalize.resource)


class _Publisher:
    """Publishes the route's events for one finalize, before the event is acknowledged (a failure raises: retry)."""

    def __init__(self, route: ExtensionRoute, finalize: Finalize, deps: Dependencies) -> None:
        self._publishing = route.publishing
        self._finalize = finalize
        self._deps = deps

    def __call__(self, event: events.ExtensionEvent) -> None:
        if self._publishing is None:
            return
        if self._deps.events is None:
            raise RuntimeError("an extension route publishes events but no event publisher was connected")
        cloud_events = self._publishing.cloud_events([event], self._finalize.event_id, self._deps.now())
        self._deps.events.publish(self._publishing.channel, cloud_events)

    def best_effort(self, event: events.ExtensionEvent) -> None:
        """Publish, logging a failure instead of raising it."""
        try:
            self(event)
        except Exception as error:
            log(
                LOGGER,
                logging.WARNING,
                "event not published",
                type=event.type,
                error=f"{type(error).__name__}: {error}",
            )


def _read_outputs(finalize: Finalize, plan: ResizePlan, objects: ObjectStore) -> dict[str, StoredObject | None]:
    """The output objects as stored now, by path, read in order until one was not made from this generation (the
    writes then read no object twice)."""
    read: dict[str, StoredObject | None] = {}
    for output in plan.objects:
        read[output.path] = stored = objects.stat(finalize.bucket, output.path)
        if not _made_from(stored, finalize):
            break
    return read


def _made_from(stored: StoredObject | None, finalize: Finalize) -> bool:
    """Whether the object is an output made from this finalize's generation."""
    return stored is not None and stored.custom.get(SOURCE_GENERATION_METADATA_KEY) == str(finalize.generation)


def _handled_already(
    route: ExtensionRoute, finalize: Finalize, plan: ResizePlan, stored: Mapping[str, StoredObject | None]
) -> bool:
    """Whether an earlier delivery of this generation made every output (and published its events)."""
    if len(stored) < len(plan.objects) or not all(_made_from(output, finalize) for output in stored.values()):
        return False
    first = stored[plan.objects[0].path]
    return route.publishing is None or (first is not None and first.custom.get(EVENTS_MARK) == str(finalize.generation))


def _resize(handling: _Handling, plan: ResizePlan, stored: Mapping[str, StoredObject | None]) -> Outcome:
    """Make and store every output, report them (onSuccess), then copy a failure aside and delete as configured."""
    route, finalize, deps, trace, publish = (
        handling.route, handling.finalize, handling.deps, handling.trace, handling.publish
    )  # fmt: skip
    data = processed = None
    early = _check_before_download(route, finalize)
    if early is not None:
        trace.error = early.as_record()
    else:
        trace.stage = "download"
        data = deps.objects.download(finalize.bucket, finalize.name, finalize.generation or 0)
        if data is None:
            # The extension's download would have thrown: onError, and nothing to copy or delete.
            gone = PermanentError(RejectionCode.SOURCE_GONE, f"generation {finalize.generation} no longer exists")
            trace.error = gone.as_record()
            publish(events.on_error(gone.message))
            return Outcome.FAILED
        processed = _make(data, plan, deps, trace)
    trace.stage = "upload"
    written = {output.path: _store(route, finalize, output, processed, deps.objects, stored) for output in plan.objects}
    trace.outputs = written
    reported = [events.ResizedOutput(output.size.text, output.path, written[output.path]) for output in plan.outputs]
    trace.stage = "events"
    publish(events.on_success(finalize.resource, reported))
    failed = not all(written.values())
    copied = _copy_failed(route, finalize, data, deps.objects, trace) if failed else False
    _delete_original(route, finalize, failed, copied, deps.objects, trace)
    return Outcome.FAILED if failed else Outcome.COMPLETE


def _make(data: bytes, plan: ResizePlan, deps: Dependencies, trace: ExtensionTrace) -> ProcessedImage | None:
    """What the core makes of the upload; None for an image it refuses (trace.error says why)."""
    trace.stage = "process"
    try:
        return deps.make_variants(data, plan.imaging)
    except PermanentError as rejection:
        # The extension reports every output of an image sharp cannot read as failed (success: false).
        trace.error = rejection.as_record()
        return None


def _check_before_download(route: ExtensionRoute, finalize: Finalize) -> PermanentError | None:
    """What the event alone shows cannot be resized, so that nothing is downloaded for it."""
    encoding = finalize.resource.get("contentEncoding")
    if isinstance(encoding, str) and encoding and encoding.lower() != "identity":
        return PermanentError(
            RejectionCode.UNSUPPORTED_ENCODING, f"the object is stored with Content-Encoding {encoding!r}"
        )
    size = finalize.size or 0
    if size > route.limits.max_input_bytes:
        return PermanentError(
            RejectionCode.TOO_LARGE, f"the upload is {size} bytes, over the {route.limits.max_input_bytes}-byte limit"
        )
    return None


def _store(
    route: ExtensionRoute,
    finalize: Finalize,
    output: PlannedOutput,
    processed: ProcessedImage | None,
    objects: ObjectStore,
    stored: Mapping[str, StoredObject | None],
) -> bool:
    """Write one output (or find it written from this generation); whether it is there as the extension has it.

    `stored` holds the objects already read for this delivery; a write that raced with another one is refused.
    """
    if processed is None:
        return False
    existing = stored[output.path] if output.path in stored else objects.stat(finalize.bucket, output.path)
    if not _made_from(existing, finalize):
        data = output.made(processed)[1].data
        metadata = _output_metadata(route, finalize, output)
        written = objects.write(finalize.bucket, output.path, data, metadata, existing.generation if existing else 0)
        if written is None:
            _raise_unless_written_by_a_twin(finalize, output, objects)
    # The extension makes each output public after writing it; a bucket that refuses object ACLs fails the output.
    return objects.make_public(finalize.bucket, output.path) if route.params.make_public else True


def _raise_unless_written_by_a_twin(finalize: Finalize, output: PlannedOutput, objects: ObjectStore) -> None:
    """A refused write is fine if a concurrent delivery of this generation wrote the output; else try again later."""
    if not _made_from(objects.stat(finalize.bucket, output.path), finalize):
        raise TransientError(f"gs://{finalize.bucket}/{output.path} changed while it was being written")


def _output_metadata(route: ExtensionRoute, finalize: Finalize, output: PlannedOutput) -> ObjectMetadata:
    """The extension's metadata for the output, with the format actually written and the generation it is from."""
    made = output_metadata(
        object_metadata(finalize.resource),
        image_type=output.image_type.value,
        output_file_name=posixpath.basename(output.path),
        cache_control_header=route.params.cache_control or None,
        regenerate_token=route.params.regenerate_token,
        new_token=lambda: str(uuid.uuid4()),
    )
    return replace(
        made,
        content_type=output.content_type,
        custom={**made.custom, SOURCE_GENERATION_METADATA_KEY: str(finalize.generation)},
    )


def _copy_failed(
    route: ExtensionRoute, finalize: Finalize, data: bytes | None, objects: ObjectStore, trace: ExtensionTrace
) -> bool:
    """Copy a failed upload to FAILED_IMAGES_PATH (marked, so it is skipped); whether the copy is there."""
    path = route.failed_copy_path(finalize.name)
    if path is None or data is None:
        return False
    trace.stage = "failed_copy"
    # The extension's storage client names the type after the copy's name; nothing of the original's is copied.
    metadata = replace(FAILED_COPY_METADATA, content_type=mimetypes.guess_type(path)[0])
    if objects.write(finalize.bucket, path, data, metadata, replacing=0) is None:
        log(LOGGER, logging.INFO, "failed copy already there", object=path)
    return True


def _delete_original(
    route: ExtensionRoute,
    finalize: Finalize,
    failed: bool,
    copied: bool,
    objects: ObjectStore,
    trace: ExtensionTrace,
) -> None:
    """DELETE_ORIGINAL_FILE, once the outcome is final: `true` whatever it is, `on_success` only if nothing failed.

    A failed upload is kept when FAILED_IMAGES_PATH asked for a copy that could not be made (too large to download):
    deleting it would lose the only copy.
    """
    policy = route.params.delete_original
    keep_for_copy = failed and bool(route.params.failed_images_path) and not copied
    always = policy is DeleteOriginalFile.ALWAYS and not keep_for_copy
    if always or (policy is DeleteOriginalFile.ON_SUCCESS and not failed):
        trace.stage = "delete_original"
        objects.delete(finalize.bucket, finalize.name, finalize.generation or 0)


def _mark_events_published(finalize: Finalize, plan: ResizePlan, objects: ObjectStore) -> None:
    """Mark the first output: a redelivery of this generation then publishes nothing more."""
    first = plan.objects[0]
    stored = objects.stat(finalize.bucket, first.path)
    if stored is not None and _made_from(stored, finalize):
        objects.add_custom(finalize.bucket, first.path, stored.generation, {EVENTS_MARK: str(finalize.generation)})
