"""Bounded waits for tests: poll a condition until it holds or the time is up, instead of sleeping and hoping.

Standard library only, so any test module can use them without starting or importing the emulators' clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(condition: Callable[[], Any], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Call `condition` until it is true or the time is up; its last answer."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True


def wait_until(
    condition: Callable[[], Any], timeout_s: float, reason: str | Callable[[], str], interval_s: float = 0.05
) -> None:
    """Poll `condition` until it is true; AssertionError naming `reason` (called, if callable) when the time is up."""
    if not poll(condition, timeout_s, interval_s):
        raise AssertionError(f"waited {timeout_s:g} s for {reason() if callable(reason) else reason}")
