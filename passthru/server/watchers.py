"""The event loop's watchers, as the connection path uses them (gevent's public loop API)."""

from __future__ import annotations

from gevent import get_hub

READ, WRITE = 1, 2


def io(fd: int, events: int):  # type: ignore[no-untyped-def]
    """A (stopped) watcher of ``fd`` becoming readable (READ) or writable (WRITE)."""
    return get_hub().loop.io(fd, events)


def timer(seconds: float):  # type: ignore[no-untyped-def]
    """A (stopped) one-shot timer."""
    return get_hub().loop.timer(seconds)


def dispose(watcher: object) -> None:
    """Stop a watcher and release it; None is fine (nothing was watched)."""
    if watcher is not None:
        watcher.stop()  # type: ignore[attr-defined]
        watcher.close()  # type: ignore[attr-defined]
