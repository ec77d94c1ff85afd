"""Threads that Passthru starts do not take the signals meant for the main thread.

Python runs signal handlers in the main thread only, but the kernel delivers a process's signal
to any thread that does not block it. The user identifiers' time limit (``SIGALRM``, ticking
every few milliseconds while user code is called) would then land now and then on a file
watcher thread asleep in ``poll`` or on a lock: the thread wakes, needs the GIL to go back to
sleep, and takes it from the busy hub. A thread inherits the signal mask of the thread that
starts it, so threads started inside :func:`alarm_blocked` never see ``SIGALRM``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def alarm_blocked() -> Iterator[None]:
    """Block ``SIGALRM`` in this thread for the block (threads started in it keep it blocked);
    an alarm that comes meanwhile is delivered when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
