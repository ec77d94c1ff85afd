"""Waiting for something a process does in its own time (a reload, a log line, a listener).

The deadline only bounds a failing test: a passing one returns as soon as the condition holds,
so it is generous (30 s). A short deadline is what made tests fail beside a busy machine."""

from __future__ import annotations

import time
from collections.abc import Callable

PATIENCE = 30.0


def wait_until(condition: Callable[[], object], timeout: float = PATIENCE, interval: float = 0.05) -> float:
    """Poll ``condition`` until it is true; the seconds it took. Fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition {getattr(condition, '__name__', condition)} not met in {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started
