"""One backfill run: the listing streamed into a bounded thread pool, each object skipped, dry-run or processed."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol, TypeVar

from image_pipeline.batch import LOGGER
from image_pipeline.batch.plan import Budget, Plan, owned
from image_pipeline.batch.retry import retrying
from image_pipeline.errors import DocumentNotYetCreated
from image_pipeline.logs import log
from image_pipeline.ports import Outcome
from image_pipeline.usecase import Dependencies

T = TypeVar("T")


class Action(str, Enum):
    """What the backfill did with one listed object."""

    NOT_SOURCE = "not_a_source_upload"
    OTHER_ROUTE = "other_route"
    SKIPPED = "skipped"  # the guard ended it without work; the report's outcome says why
    BEYOND_LIMIT = "beyond_limit"
    INTERRUPTED = "interrupted"
    WOULD_PROCESS = "would_process"
    PROCESSED = "processed"
    ERROR = "error"


_LOG_LEVEL = {Action.PROCESSED: logging.INFO, Action.WOULD_PROCESS: logging.INFO, Action.ERROR: logging.ERROR}


@dataclass(frozen=True)
class Report:
    """One object's result, for the tally and its log line; `outcome` is the use case's, or the guard's for a skip."""

    name: str
    generation: str | None
    action: Action
    outcome: Outcome | None = None
    code: str | None = None
    detail: str | None = None
    stage: str | None = None
    duration_ms: float = 0.0


@dataclass
class Tally:
    """Counts for the progress line and the summary; updated from the worker threads."""

    listed: int = 0
    total: int | None = None
    actions: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    skips: Counter = field(default_factory=Counter)  # guard outcome -> count
    failed: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, report: Report) -> None:
        """Count one finished object."""
        with self._lock:
            if report.action is Action.SKIPPED and report.outcome is not None:
                self.skips[report.outcome.value] += 1
            else:
                self.actions[report.action] += 1
            if report.action is Action.PROCESSED and report.outcome is not None:
                self.outcomes[report.outcome.value] += 1
            if report.outcome is Outcome.FAILED:
                self.failed[report.code or "unknown"] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counts as plain numbers, read consistently."""
        with self._lock:
            actions = dict(self.actions)
            skipped = {action.value: count for action, count in actions.items() if action in _SKIPS}
            skipped.update(self.skips)
            done = skipped.pop(Outcome.DUPLICATE.value, 0)
            return {
                "listed": self.listed,
                "examined": sum(actions.values()) + sum(self.skips.values()),
                "total": self.total,
                "skipped_done": done,
                "would_process": actions.get(Action.WOULD_PROCESS, 0),
                "processed": actions.get(Action.PROCESSED, 0),
                "complete": self.outcomes.get(Outcome.COMPLETE.value, 0),
                "failed": dict(self.failed),
                "errors": actions.get(Action.ERROR, 0),
                "skipped": skipped,
                "outcomes": dict(self.outcomes),
            }


_SKIPS = (Action.NOT_SOURCE, Action.OTHER_ROUTE, Action.BEYOND_LIMIT, Action.INTERRUPTED)


class Traced(Protocol):
    """What a use case's trace tells the report: where it got to, and its error record."""

    @property
    def stage(self) -> str: ...

    @property
    def error(self) -> Mapping[str, str] | None: ...


class Job(Protocol):
    """One listed upload, taken by a kind of route: whether it is done already, and its processing."""

    @property
    def trace(self) -> Traced: ...

    def settled(self) -> Outcome | None:
        """How the upload already ended (DUPLICATE: done, which --force redoes), or None while it is pending."""
        ...

    def process(self, force: bool) -> Outcome:
        """Run the function's use case on it, as for its finalize event; raise on a transient error."""
        ...


class Uploads(Protocol):
    """A kind of route's part in a backfill (batch/kinds.py): which listed objects it takes, as which job."""

    def take(self, resource: Mapping[str, Any], event_id: str, event_time: str, deps: Dependencies) -> Job | Action:
        """The job for this object resource delivered as an event with this id and time, or why there is none."""
        ...


class Backfill:
    """One run: streams the listing into a bounded thread pool and tallies what happens to each object."""

    def __init__(
        self,
        plan: Plan,
        uploads: Uploads,
        deps: Dependencies,
        observe: Callable[[Report, Tally], None] | None = None,
    ) -> None:
        self.plan = plan
        self.uploads = uploads
        self.deps = deps
        self.tally = Tally()
        self.stop = threading.Event()
        self._observe = observe or (lambda report, tally: None)
        self._budget = Budget(plan.limit)
        # Twice the workers: one object waits per worker, so the listing never runs far ahead of the work.
        self._slots = threading.BoundedSemaphore(2 * plan.concurrency)
        self._in_flight: set[Future] = set()
        self._in_flight_lock = threading.Lock()
        self._ended = threading.Event()

    def run(self) -> dict[str, Any]:
        """List, examine and process until the listing ends, the limit is reached or Ctrl-C; return the summary."""
        started = time.monotonic()
        log(LOGGER, logging.INFO, "backfill started", **self._plan_fields())
        threading.Thread(target=self._count, name="backfill-count", daemon=True).start()
        interrupted, listing_error = False, None
        pool = ThreadPoolExecutor(self.plan.concurrency, thread_name_prefix="backfill")
        try:
            self._feed(pool)
        except KeyboardInterrupt:
            interrupted = True
            self.stop.set()
        except Exception as error:
            # Page retries are exhausted (or the bucket is wrong): end with a summary; a rerun resumes.
            listing_error = f"{type(error).__name__}: {error}"
            log(LOGGER, logging.ERROR, "listing failed; stopping", error=listing_error)
        interrupted = self._drain() or interrupted
        pool.shutdown(wait=True)
        self._ended.set()
        summary = self._summary(time.monotonic() - started, interrupted, listing_error)
        log(LOGGER, logging.INFO, "backfill finished", **summary)
        return summary

    def _feed(self, pool: ThreadPoolExecutor) -> None:
        """Hand each object of this shard to the pool, waiting for a free slot first."""
        for resource in owned(self._listing(), self.plan.shard):
            if self.stop.is_set() or self._budget.exhausted:
                return
            self._slots.acquire()
            self.tally.listed += 1
            future = pool.submit(self.examine, resource)
            with self._in_flight_lock:
                self._in_flight.add(future)
            future.add_done_callback(self._finished)

    def _finished(self, future: Future) -> None:
        """Free the slot, count the result and tell the observer."""
        with self._in_flight_lock:
            self._in_flight.discard(future)
        self._slots.release()
        report = future.result()
        self.tally.record(report)
        self._observe(report, self.tally)

    def _drain(self) -> bool:
        """Wait for the objects in flight; a Ctrl-C meanwhile only stops retries and queued objects."""
        interrupted = False
        while True:
            with self._in_flight_lock:
                pending = list(self._in_flight)
            if not pending:
                return interrupted
            try:
                wait(pending)
            except KeyboardInterrupt:
                interrupted = True
                self.stop.set()

    def _count(self) -> None:
        """Count this shard's objects with a second listing, so that the progress line can show an ETA."""
        total = 0
        try:
            for _ in owned(self._listing(), self.plan.shard):
                if self._ended.is_set():
                    return
                total += 1
        except Exception as error:
            log(LOGGER, logging.INFO, "counting the objects failed; no ETA", error=f"{type(error).__name__}: {error}")
            return
        self.tally.total = total

    def examine(self, resource: Mapping[str, Any]) -> Report:
        """Skip, dry-run or process one listed object; never raises."""
        started = time.perf_counter()
        name, generation = str(resource.get("name")), _text(resource.get("generation"))
        job = self._take(resource)
        report = Report(name, generation, job) if isinstance(job, Action) else self._work(name, generation, job)
        report = replace(report, duration_ms=round((time.perf_counter() - started) * 1000, 1))
        _log_report(report)
        return report

    def _take(self, resource: Mapping[str, Any]) -> Job | Action:
        """The job on this object, or why there is none (after a stop, the objects still queued are left alone)."""
        if self.stop.is_set():
            return Action.INTERRUPTED
        return self.uploads.take(resource, *self._event(resource), self.deps)

    def _work(self, name: str, generation: str | None, job: Job) -> Report:
        """The report on a taken upload: skipped as done, beyond the limit, dry-run, processed, or in error."""
        try:
            action, outcome = self._do(name, job)
            code = (job.trace.error or {}).get("code")
            return Report(name, generation, action, outcome, code, stage=job.trace.stage)
        except DocumentNotYetCreated:
            return Report(name, generation, Action.SKIPPED, Outcome.DOCUMENT_MISSING)
        except Exception as error:
            detail = f"{type(error).__name__}: {error}"
            return Report(name, generation, Action.ERROR, detail=detail, stage=job.trace.stage)

    def _do(self, name: str, job: Job) -> tuple[Action, Outcome | None]:
        """The action taken, and the use case's outcome when it ran."""
        ends = self._retrying(name, job.settled)
        if ends is not None and not (self.plan.force and ends is Outcome.DUPLICATE):
            return Action.SKIPPED, ends
        if not self._budget.take():
            return Action.BEYOND_LIMIT, None
        if self.plan.dry_run:
            return Action.WOULD_PROCESS, None
        return Action.PROCESSED, self._retrying(name, lambda: job.process(self.plan.force))

    def _listing(self) -> Iterator[Mapping[str, Any]]:
        """Every object under the plan's prefixes, one prefix after the other."""
        for prefix in self.plan.prefixes:
            yield from self.deps.objects.list_objects(self.plan.bucket, prefix)

    def _event(self, resource: Mapping[str, Any]) -> tuple[str, str]:
        """The id and time of the event the function would have received for this object, timed now.

        Timed now, not at the upload: the use case then raises transient errors for our retries instead of
        recording 'retries_exhausted' for an old object, exactly as for a fresh delivery.
        """
        return f"backfill:{resource.get('name')}#{resource.get('generation')}", self.deps.now().isoformat()

    def _retrying(self, name: str, call: Callable[[], T]) -> T:
        """Call under the retry policy; a stop ends the waiting."""
        return retrying(call, name, self.plan.attempts, self.plan.backoff_s, self.stop)

    def _plan_fields(self) -> dict[str, Any]:
        """The plan, for log lines and the summary."""
        plan = self.plan
        return {
            "bucket": plan.bucket,
            "prefixes": list(plan.prefixes),
            "routes": list(plan.routes) or None,
            "shard": str(plan.shard),
            "dry_run": plan.dry_run,
            "force": plan.force,
            "limit": plan.limit,
            "concurrency": plan.concurrency,
        }

    def _summary(self, duration_s: float, interrupted: bool, listing_error: str | None) -> dict[str, Any]:
        """The end-of-run summary: the plan, the counts, and how it ended."""
        counts = self.tally.snapshot()
        return {
            **self._plan_fields(),
            **{key: value for key, value in counts.items() if key not in ("examined", "total")},
            "interrupted": interrupted,
            "listing_error": listing_error,
            "duration_s": round(duration_s, 3),
            "rate_per_s": round(counts["examined"] / duration_s, 2) if duration_s > 0 else None,
        }


def _text(value: Any) -> str | None:
    """A resource field as text, or None."""
    return None if value is None else str(value)


def _log_report(report: Report) -> None:
    """One line per object: processed ones at INFO (failed at WARNING), skips at DEBUG, errors at ERROR."""
    level = _LOG_LEVEL.get(report.action, logging.DEBUG)
    if report.outcome is Outcome.FAILED:
        level = logging.WARNING
    fields = {key: value for key, value in vars(report).items() if value is not None}
    fields["object"] = fields.pop("name")
    log(LOGGER, level, f"{report.action.value}: {report.name}", **fields)
