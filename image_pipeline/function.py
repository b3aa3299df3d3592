"""The function's per-instance state and per-event flow.

Classify, skip cheaply, or run the use case and log one summary.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from image_pipeline.bootstrap import connect
from image_pipeline.errors import TransientError
from image_pipeline.extension.resize import ExtensionTrace, Finalize, handle_finalize
from image_pipeline.extension.route import ExtensionRoute
from image_pipeline.logs import log
from image_pipeline.options import Variant
from image_pipeline.ports import Outcome
from image_pipeline.settings import Settings
from image_pipeline.uploads import Skip, classify
from image_pipeline.usecase import Dependencies, Trace, handle_upload

LOGGER = logging.getLogger("image_pipeline.function")
# The warm-up image's height: enough to run every decoder and encoder once, too small to cost anything.
WARM_UP_EDGE = 16

# When routes disagree about one event, the summary line's outcome is the one furthest along this list.
OUTCOME_WEIGHT = (
    Outcome.SKIPPED,
    Outcome.DUPLICATE,
    Outcome.SUPERSEDED,
    Outcome.COMPLETE,
    Outcome.NOT_OWNER,
    Outcome.DOCUMENT_MISSING,
    Outcome.FAILED,
)
_SEVERITY = {
    Outcome.SKIPPED: logging.INFO,
    Outcome.COMPLETE: logging.INFO,
    Outcome.DUPLICATE: logging.INFO,
    Outcome.SUPERSEDED: logging.INFO,
    Outcome.FAILED: logging.WARNING,
    Outcome.NOT_OWNER: logging.WARNING,
    Outcome.DOCUMENT_MISSING: logging.WARNING,
}


def warm_up_dependencies(settings: Settings, dependencies: Dependencies, upload_started: threading.Event) -> None:
    """Do now what a first upload would otherwise wait for: the Firestore handshake and each encoder's first run.

    Stops once an upload has started: that upload loads what it needs itself, and a second thread competing with it
    for the interpreter lock delays each of its network reads (measured: +0.2-0.4 s on its first event).
    """
    from image_pipeline.gateway.firestore import FirestoreDocuments

    if isinstance(dependencies.documents, FirestoreDocuments) and not upload_started.is_set():
        dependencies.documents.open_channel(settings.client_timeout_s)
    # One run per distinct set of encodings imports the imaging core and loads every decoder and encoder once (an
    # extension route's as for a JPEG upload, the usual one).
    imaging = [route.imaging for route in settings.routes]
    imaging += [route.plan("warm-up.jpg", "image/jpeg").imaging for route in settings.extension_routes]
    for options in {options.encodings: options for options in imaging}.values():
        if upload_started.is_set():
            return
        dependencies.make_variants(tiny_jpeg(), replace(options, variants=(Variant("warm-up", WARM_UP_EDGE),)))


def tiny_jpeg() -> bytes:
    """A small JPEG, the usual upload's format, to run the imaging core on."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (WARM_UP_EDGE * 2, WARM_UP_EDGE), (120, 90, 60)).save(out, "JPEG")
    return out.getvalue()


class Function:
    """One instance of the function: settings read once, clients created lazily once, safe across threads."""

    def __init__(
        self,
        settings: Settings,
        connect: Callable[[Settings], Dependencies] = connect,
        warm_up: Callable[[Settings, Dependencies, threading.Event], None] = warm_up_dependencies,
    ) -> None:
        self._settings = settings
        self._connect = connect
        self._warm_up = warm_up
        self._dependencies: Dependencies | None = None
        self._lock = threading.Lock()
        self._upload_started = threading.Event()

    def start_warm_up(self) -> threading.Thread:
        """Connect and load in a background thread while events are served (the skip path never waits for it)."""
        thread = threading.Thread(target=self._warm_up_now, name="warm-up", daemon=True)
        thread.start()
        return thread

    def _warm_up_now(self) -> None:
        """Create the adapters (an event arriving meanwhile waits for them, not for a second set) and warm them."""
        started = time.perf_counter()
        try:
            self._warm_up(self._settings, self._connected(), self._upload_started)
        except Exception as error:
            # Only the head start is lost: the first upload connects and loads on its own.
            log(LOGGER, logging.WARNING, "warm-up failed", error=f"{type(error).__name__}: {error}")
            return
        log(LOGGER, logging.INFO, "warmed up", warmUpMs=round((time.perf_counter() - started) * 1000, 1))

    def handle(self, event_id: str, event_time: str | None, data: Any) -> Outcome:
        """Handle one storage event; raise to have it redelivered. Logs exactly one summary line."""
        started = time.perf_counter()
        trace = Trace()
        try:
            outcome, reason = self._handle(event_id, event_time, data, trace)
        except Exception as error:
            # Expected outages are warnings; anything else is a bug worth an error report.
            level = logging.WARNING if isinstance(error, TransientError) else logging.ERROR
            self._summarise(event_id, data, trace, started, "retry", level, error=f"{type(error).__name__}: {error}")
            raise
        self._summarise(event_id, data, trace, started, outcome.value, _SEVERITY[outcome], reason=reason)
        return outcome

    def _handle(self, event_id: str, event_time: str | None, data: Any, trace: Trace) -> tuple[Outcome, str | None]:
        """Every extension route sees the event, then the first of our routes that matches it takes it."""
        outcomes = [self._extension_outcome(route, event_id, event_time, data, trace)
                    for route in self._settings.extension_routes]  # fmt: skip
        upload = classify(event_id, event_time, data, self._settings.routes)
        if isinstance(upload, Skip):
            if any(outcome is not Outcome.SKIPPED for outcome in outcomes):
                return max(outcomes, key=OUTCOME_WEIGHT.index), None
            return Outcome.SKIPPED, upload.reason
        trace.route = upload.route.name
        self._upload_started.set()
        outcome = handle_upload(upload, self._settings.policy, self._connected(), trace)
        return max([*outcomes, outcome], key=OUTCOME_WEIGHT.index), None

    def _extension_outcome(
        self, route: ExtensionRoute, event_id: str, event_time: str | None, data: Any, trace: Trace
    ) -> Outcome:
        """One extension route's handling of the event, recorded in the trace under the route's name."""
        if not isinstance(data, Mapping):
            return Outcome.SKIPPED
        skipped = route.skip_reason(data) is not None
        if skipped and route.publishing is None:
            # Skipped without connecting anything: a route that publishes must announce every finalize (onStart).
            return Outcome.SKIPPED
        if not skipped:
            self._upload_started.set()  # an upload to make: the warm-up gives way (an announcement needs no core)
        extension_trace = trace.extensions.setdefault(route.name, ExtensionTrace())
        finalize = Finalize(event_id, event_time, data)
        outcome = handle_finalize(route, finalize, self._settings.policy, self._connected(), extension_trace)
        extension_trace.outcome = outcome
        return outcome

    def _connected(self) -> Dependencies:
        """The adapters, created by the first event that needs them."""
        if self._dependencies is None:
            with self._lock:
                if self._dependencies is None:
                    self._dependencies = self._connect(self._settings)
        return self._dependencies

    def _summarise(
        self, event_id: str, data: Any, trace: Trace, started: float, outcome: str, level: int, **extra: Any
    ) -> None:
        """The per-event summary line for Cloud Logging."""
        resource = data if isinstance(data, dict) else {}
        fields = {
            "eventId": event_id,
            "bucket": resource.get("bucket"),
            "object": resource.get("name"),
            "generation": resource.get("generation"),
            "stage": trace.stage,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "outcome": outcome,
        }
        if trace.route:
            fields["route"] = trace.route
        if trace.error:
            fields["error"] = trace.error
        if trace.extensions:
            fields["extensions"] = {name: extension.as_record() for name, extension in trace.extensions.items()}
        if trace.decoder_warnings:
            # Decoder warnings are facts about the image, counted here instead of one raw log line each.
            fields["decoderWarnings"] = trace.decoder_warnings
        fields.update({key: value for key, value in extra.items() if value is not None})
        log(LOGGER, level, f"{outcome}: {resource.get('name')}", **fields)
