"""The event loop's watchers, as the connection path uses them (gevent's public loop API).

Stopped io watchers are kept for reuse (up to ``SPARE_IO``) rather than closed: every connection
needs two, and a new one costs an allocation and a system call (gevent checks the descriptor
with ``fcntl``), while a spare one only has its descriptor and events set.
"""

from __future__ import annotations

from gevent import get_hub

READ, WRITE = 1, 2
#: Stopped io watchers kept for reuse, per process.
SPARE_IO = 1024


class _Spares:
    """The stopped io watchers of this process's loop (a forked worker's loop is a new one)."""

    loop: object = None
    kind: type | None = None
    watchers: list = []


_SPARES = _Spares()


def io(fd: int, events: int):  # type: ignore[no-untyped-def]
    """A (stopped) watcher of ``fd`` becoming readable (READ) or writable (WRITE)."""
    loop = get_hub().loop
    spares = _SPARES
    if spares.loop is loop:
        if spares.watchers:
            watcher = spares.watchers.pop()
            watcher.fd = fd
            watcher.events = events
            return watcher
    else:
        spares.loop, spares.watchers = loop, []
    watcher = loop.io(fd, events)
    spares.kind = type(watcher)
    return watcher


def timer(seconds: float):  # type: ignore[no-untyped-def]
    """A (stopped) one-shot timer."""
    return get_hub().loop.timer(seconds)


def dispose(watcher: object) -> None:
    """Stop a watcher and release it (an io watcher may be reused: whoever disposes of it must
    hold no reference to it afterwards); None is fine (nothing was watched)."""
    if watcher is None:
        return
    watcher.stop()  # type: ignore[attr-defined]
    spares = _SPARES
    if type(watcher) is spares.kind and watcher.loop is spares.loop and len(spares.watchers) < SPARE_IO:  # type: ignore[attr-defined]
        watcher.callback = None  # type: ignore[attr-defined]  # drop the references it holds
        watcher.args = ()  # type: ignore[attr-defined]
        spares.watchers.append(watcher)
    else:
        watcher.close()  # type: ignore[attr-defined]
