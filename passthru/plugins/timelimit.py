"""A wall-clock deadline for one call into user code, enforced with ``SIGALRM``.

Why a signal: gevent runs every greenlet in the main thread, so a runaway ``while True`` in a
user identifier would freeze every connection of the process; nothing cooperative can stop it.
CPython runs Python-level signal handlers between bytecodes of the main thread, so a handler
that raises lands inside the loop and unwinds it.

How: a ticking ``setitimer(ITIMER_REAL, tick, tick)`` and a handler that raises ``Overrun``
only when a call's deadline has passed and the interrupted frame is *inside* that call (it
walks ``f_back`` to the frame of :meth:`TimeLimit.call`). So an alarm that arrives after the
call returned, or while a user function has switched to another greenlet, is ignored instead of
hitting unrelated code; the handler keeps firing every ``tick`` until the call ends, which also
defeats code that swallows one ``Overrun`` and carries on.

Cost: a call itself makes no system call, only two attribute writes: the timer is armed at the
first call and keeps ticking while calls keep coming (each call checks, without a system call,
that the handler is still ours); once none came for ``idle`` seconds the handler disarms it and
gives ``SIGALRM`` back (the previous handler, and a previous timer with
what was left of it). Arming and disarming per call cost four system calls, twelve per
connection with three user files. A deadline is kept within one ``tick`` (5 ms).

Limits (documented in README, "User identifiers"):

* Only the main thread can be interrupted (that is where the hub runs). Elsewhere the call runs
  unlimited and the caller can only measure the overrun afterwards (``TimeLimit.can_interrupt``).
* A single long C call (a pathological regex, ``hashlib`` over a huge buffer) cannot be
  interrupted; it overruns until it returns. Sleeping is interrupted (PEP 475 retries only when
  the handler does not raise).
* Code that catches ``BaseException`` (a bare ``except:``) around its whole loop can swallow
  every alarm. This is containment of mistakes, not a sandbox against hostile code.
* While armed it owns ``SIGALRM``: a previous timer that would have fired meanwhile fires once
  it is given back instead.
"""

from __future__ import annotations

import atexit
import os
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
    """Runs one call at a time under a deadline. Not re-entrant: one instance per process
    (``TIME_LIMIT``), since a process has one ``SIGALRM``."""

    def __init__(self, tick: float = 0.005, idle: float = 1.0) -> None:
        self.tick = tick
        self.idle = idle
        self._frame: FrameType | None = None
        self._deadline = 0.0
        self._last_call = 0.0
        self._armed = False
        self._previous_handler: object = None
        self._previous_timer: tuple[float, float] = (0.0, 0.0)
        self._armed_at = 0.0
        self._handler = self._on_alarm  # one bound method, so that ownership is an identity test

    def can_interrupt(self) -> bool:
        """Whether a call made now would be limited: only in the main thread (the one that gets
        the alarm's exception), and not inside another limited call (one timer per process)."""
        return self._frame is None and threading.get_ident() == _MAIN_THREAD

    def call(self, func: Callable[[A], T], arg: A, seconds: float) -> T:
        """``func(arg)``, raising :class:`Overrun` if it is still running after ``seconds``."""
        if not self.can_interrupt():
            return func(arg)  # nested or off the main thread: the caller measures instead
        if not self._armed or _sig.getsignal(_sig.SIGALRM) is not self._handler:
            self._arm()  # first call, or someone else took SIGALRM meanwhile: take it back
        self._deadline = perf_counter() + seconds
        self._frame = sys._getframe()
        try:
            return func(arg)
        finally:
            self._frame = None
            self._last_call = perf_counter()

    def _arm(self) -> None:
        self._previous_handler = _sig.signal(_sig.SIGALRM, self._handler)
        self._previous_timer = _sig.setitimer(_sig.ITIMER_REAL, self.tick, self.tick)
        self._armed_at = self._last_call = perf_counter()
        self._armed = True

    def disarm(self) -> None:
        """Stop ticking and give ``SIGALRM`` back (its handler, and what was left of its timer)."""
        if not self._armed:
            return
        self._armed = False
        _sig.setitimer(_sig.ITIMER_REAL, 0)
        previous = self._previous_handler
        _sig.signal(_sig.SIGALRM, previous if previous is not None else _sig.SIG_DFL)
        remaining, interval = self._previous_timer
        if remaining > 0:
            left = remaining - (perf_counter() - self._armed_at)
            _sig.setitimer(_sig.ITIMER_REAL, max(left, 1e-6), interval)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        target = self._frame
        if not self._armed:  # a stale tick (a timer of ours given back to us by another owner)
            _sig.setitimer(_sig.ITIMER_REAL, 0)
            return
        if target is None:  # between calls
            if perf_counter() - self._last_call > self.idle:
                self.disarm()
            return
        if frame is target or perf_counter() < self._deadline:
            return  # returning, or still within its time
        while frame is not None:
            if frame is target:
                raise Overrun
            frame = frame.f_back
        # Another greenlet is running (the user code switched away): try again next tick.

    def forget(self) -> None:
        """In a forked child: the timer was not inherited (timers never are), so the next call
        arms it again."""
        self._armed = False


#: The process's time limit, shared by every set of user identifiers (a reload makes a new set).
TIME_LIMIT = TimeLimit()
os.register_at_fork(after_in_child=TIME_LIMIT.forget)
atexit.register(TIME_LIMIT.disarm)  # a tick after the interpreter reset SIGALRM would kill the exit
