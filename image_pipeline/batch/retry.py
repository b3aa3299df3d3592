"""The backfill's retry policy: transient errors are retried with jittered exponential backoff; a stop ends the wait."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TypeVar

from image_pipeline.batch import LOGGER
from image_pipeline.errors import DocumentNotYetCreated, TransientError
from image_pipeline.logs import log

T = TypeVar("T")


def retrying(call: Callable[[], T], name: str, attempts: int, backoff_s: float, stop: threading.Event) -> T:
    """Call, retrying transient errors up to `attempts` tries; a missing document is the caller's to report."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except DocumentNotYetCreated:
            raise
        except TransientError as error:
            if attempt == attempts:
                raise
            delay = backoff_delay_s(backoff_s, attempt)
            log(LOGGER, logging.WARNING, f"retrying {name}", object=name, attempt=attempt,
                delay_s=round(delay, 2), error=str(error))  # fmt: skip
            if stop.wait(delay):
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def backoff_delay_s(backoff_s: float, attempt: int) -> float:
    """The wait after failed try `attempt` (from 1): doubling from `backoff_s`, jittered between 0.5x and 1.5x."""
    return backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
