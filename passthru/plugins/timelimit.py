"""A wall-clock deadline for one call into user code, enforced with ``SIGALRM``.

Why a signal: gevent runs every greenlet in the main thread, so a runaway ``while True`` in a
user identifier would freeze every connection of the process; nothing cooperative can stop it.
CPython runs Python-level signal handlers between bytecodes of the main thread, so a handler
that raises lands inside the loop and unwinds it.

How: ``setitimer(ITIMER_REAL, seconds, repeat)`` arms a timer; its handler raises ``Overrun``
only when the interrupted frame is *inside* the call being limited (it walks ``f_back`` to the
frame of :meth:`TimeLimit.call`). So an alarm that arrives after the call returned, or while a
user function has switched to another greenlet, is ignored instead of hitting unrelated code;
the timer keeps firing every ``repeat`` seconds until the call ends, which also defeats code
that swallows one ``Overrun`` and carries on. The previous ``SIGALRM`` handler and any running
timer are saved and restored around each call.

Limits (documented in README, "User identifiers"):

* Only the main thread can be interrupted (that is where the hub runs). Elsewhere the call runs
  unlimited and the caller can only measure the overrun afterwards (``TimeLimit.can_interrupt``).
* A single long C call (a pathological regex, ``hashlib`` over a huge buffer) cannot be
  interrupted; it overruns until it returns. Sleeping is interrupted (PEP 475 retries only when
  the handler does not raise).
* Code that catches ``BaseException`` (a bare ``except:``) around its whole loop can swallow
  every alarm. This is containment of mistakes, not a sandbox against hostile code.
* A previous timer that would have fired during the call fires after it instead.

The public ``signal.signal`` wraps handlers in enums and costs ~4 us per call; ``_signal``
(what ``signal`` itself is built on) costs ~0.3 us, so the per-call overhead is ~2 us.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from time import perf_counter
from types import FrameType
from typing import TypeVar

try:  # the C module underneath ``signal``: same functions, no enum conversion (10x cheaper)
    import _signal as _sig
except ImportError:  # pragma: no cover - other interpreters
    import signal as _sig

A = TypeVar("A")
T = TypeVar("T")
_MAIN_THREAD = threading.main_thread().ident


class Overrun(BaseException):
    """Raised inside user code when its time is up.

    A ``BaseException`` so that ``except Exception:`` in user code does not swallow it.
    """


class TimeLimit:
    """Runs one call at a time under a deadline. Not re-entrant: one instance per process."""

    def __init__(self, repeat: float = 0.005) -> None:
        self.repeat = repeat
        self._frame: FrameType | None = None

    def can_interrupt(self) -> bool:
        """Whether a call made now would be limited: only in the main thread (the one that gets
        the alarm's exception), and not inside another limited call (one timer per process)."""
        return self._frame is None and threading.get_ident() == _MAIN_THREAD

    def call(self, func: Callable[[A], T], arg: A, seconds: float) -> T:
        """``func(arg)``, raising :class:`Overrun` if it is still running after ``seconds``."""
        if not self.can_interrupt():
            return func(arg)  # nested or off the main thread: the caller measures instead
        previous_handler = _sig.signal(_sig.SIGALRM, self._on_alarm)
        previous_timer = _sig.setitimer(_sig.ITIMER_REAL, max(seconds, 1e-6), self.repeat)
        started = perf_counter()
        self._frame = sys._getframe()
        try:
            return func(arg)
        finally:
            self._frame = None
            _sig.setitimer(_sig.ITIMER_REAL, 0)
            _sig.signal(_sig.SIGALRM, previous_handler if previous_handler is not None else _sig.SIG_DFL)
            if previous_timer[0] > 0:
                remaining = previous_timer[0] - (perf_counter() - started)
                _sig.setitimer(_sig.ITIMER_REAL, max(remaining, 1e-6), previous_timer[1])

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        target = self._frame
        if target is None or frame is target:
            return  # the call has returned (or is returning): nothing to interrupt
        while frame is not None:
            if frame is target:
                raise Overrun
            frame = frame.f_back
        # Another greenlet is running (the user code switched away): try again next tick.
