"""The backfill's progress on stderr: a line redrawn in place on a terminal, a JSON log line otherwise."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from image_pipeline.logs import log

if TYPE_CHECKING:
    from image_pipeline.batch.run import Tally

# The progress lines keep the logger name they always had: operators' filters select on it.
LOGGER = logging.getLogger("image_pipeline.backfill")


def progress_status(counts: Mapping[str, Any], elapsed_s: float, limit: int | None) -> dict[str, Any]:
    """Count, rate and ETA from a tally snapshot.

    The ETA takes whichever comes first: the end of the counted listing, or the limit at the current pace.
    """
    examined = counts["examined"]
    rate = examined / elapsed_s if elapsed_s > 0 else 0.0
    taken = counts["processed"] + counts["would_process"] + counts["errors"]
    estimates = []
    if counts["total"] is not None and rate > 0:
        estimates.append(max(0, counts["total"] - examined) / rate)
    if limit is not None and taken > 0:
        estimates.append(max(0, limit - taken) * elapsed_s / taken)
    return {
        "examined": examined,
        "total": counts["total"],
        "processed": counts["processed"] + counts["would_process"],
        "skipped_done": counts["skipped_done"],
        "failed": sum(counts["failed"].values()),
        "errors": counts["errors"],
        "rate_per_s": round(rate, 2),
        "eta_s": round(min(estimates)) if estimates else None,
    }


def progress_text(status: Mapping[str, Any]) -> str:
    """The progress line a person reads."""
    examined, total = status["examined"], status["total"]
    done = f"{examined:,}/{total:,} ({100 * examined / total:.1f}%)" if total else f"{examined:,}/…"
    eta = duration_text(status["eta_s"]) if status["eta_s"] is not None else "?"
    return (
        f"backfill {done} · {status['processed']:,} processed · {status['skipped_done']:,} done · "
        f"{status['failed']:,} failed · {status['errors']:,} errors · {status['rate_per_s']:.1f}/s · ETA {eta}"
    )


def duration_text(seconds: float) -> str:
    """Seconds as 45s, 3m07s or 2h05m."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """The progress line on stderr: redrawn in place on a terminal, a JSON log line every interval otherwise.

    On a terminal it is also the log handler's stream: a log line clears the bar, which is redrawn under it.
    """

    def __init__(
        self, stream: TextIO, interactive: bool, interval_s: float, limit: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._stream = stream
        self._interactive = interactive
        self._interval_s = interval_s
        self._limit = limit
        self._clock = clock
        self._started = clock()
        self._last = float("-inf")
        self._bar = ""
        self._lock = threading.RLock()

    def update(self, tally: Tally, final: bool = False) -> None:
        """Show the progress if the interval has passed (always when final)."""
        now = self._clock()
        with self._lock:
            if not final and now - self._last < self._interval_s:
                return
            self._last = now
            status = progress_status(tally.snapshot(), now - self._started, self._limit)
            if not self._interactive:
                log(LOGGER, logging.INFO, progress_text(status), progress=status)
                return
            self._bar = "" if final else progress_text(status)
            self._stream.write(f"\r\x1b[K{progress_text(status)}" + ("\n" if final else ""))
            self._stream.flush()

    def write(self, text: str) -> int:
        """Write a log line above the bar."""
        with self._lock:
            prefix = "\r\x1b[K" if self._interactive and self._bar else ""
            self._stream.write(prefix + text + self._bar)
            return len(text)

    def flush(self) -> None:
        """Flush the underlying stream."""
        self._stream.flush()
