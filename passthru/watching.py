"""Notice changes to files in a directory and report them, settled, in the gevent hub.

Used for the user identifiers directory (``*.py`` files) and for the config file itself; the
caller says which names matter (``relevant``) and which files make up the state (``files``).

Threads: watchdog's observer reads inotify in an OS thread. That thread touches exactly one
gevent object, an ``async_`` watcher, whose ``send()`` is the libev/libuv call made to be used
from other threads; the hub then runs everything else (debounce, rescan, swap).

What counts as a change: a create, move, delete or close-after-write whose path (source or
destination) has a relevant name, a ``..*`` entry (Kubernetes swaps ``..data``), or the
directory itself. Only those events are asked of the kernel (the inotify mask): opens, reads,
read-only closes and plain writes (a log file appended to beside the config, a web server reading
its files there) never reach this process, so they cost a connection nothing. A file is
complete when it is closed after writing, or moved into place, which is what we act on; a
``chmod`` is seen by the safety-net poll below. The event's details are not used: after a
change the owner rescans the whole directory and compares content hashes, which copes the same
way with rename-over saves, truncate-then-write, many events per save and symlink swaps.

Debounce: the owner is called once events have been quiet for ``debounce`` seconds, but never
later than ``max_delay`` after the first one (so a file rewritten continuously still loads).

Safety net: every ``poll_interval`` seconds the files' ``stat()`` signatures are compared, and a
difference counts as an event. This covers file systems without inotify events (some network
and VM-shared mounts), an exhausted inotify watch limit, a directory that appears after start,
and a process whose threads were monkey-patched into greenlets (where a blocking inotify read
would freeze the hub, so the observer is not started at all).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from time import monotonic

import gevent
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from passthru.signal_mask import alarm_blocked

RELEVANT_EVENTS = frozenset({"created", "moved", "deleted", "closed"})
#: The events asked of the kernel: what can complete, replace or remove a file (see above).
WATCHED_EVENTS = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileClosedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
]


class _Forward(FileSystemEventHandler):
    """Runs in the observer thread: filter, then wake the hub. Touches nothing else."""

    def __init__(self, directory: str, wake: Callable[[], None], relevant: Callable[[str], bool]) -> None:
        self._directory = directory
        self._wake = wake
        self._relevant_name = relevant

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in RELEVANT_EVENTS:
            return
        paths = (event.src_path, getattr(event, "dest_path", "") or "")
        if any(self._relevant(os.fsdecode(p)) for p in paths if p):
            self._wake()

    def _relevant(self, path: str) -> bool:
        name = os.path.basename(path)
        return self._relevant_name(name) or name.startswith("..") or path.rstrip("/") == self._directory


class DirectoryWatcher:
    """Calls ``on_settled()`` in the hub thread after the directory changed. Start it in the hub thread."""

    def __init__(
        self,
        directory: Path,
        on_settled: Callable[[], None],
        *,
        debounce: float = 0.15,
        max_delay: float = 0.5,
        poll_interval: float = 2.0,
        log: logging.Logger,
        relevant: Callable[[str], bool],
        files: Callable[[Path], list[Path]],
    ) -> None:
        self.directory = Path(directory).absolute()  # watchdog reports absolute paths for absolute watches
        self.debounce = debounce
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self._on_settled = on_settled
        self._log = log
        self._relevant = relevant
        self._files = files
        self._observer = None
        self._wakeup = None
        self._watched: tuple[str, int] | None = None
        self._settler: gevent.Greenlet | None = None
        self._poller: gevent.Greenlet | None = None
        self._first = self._last = 0.0
        self._signature = self.signature()

    def start(self) -> None:
        self._wakeup = gevent.get_hub().loop.async_()
        self._wakeup.ref = False  # waiting for files must not keep the hub alive on its own
        self._wakeup.start(self.poke)
        if _threads_are_greenlets():
            self._log.warning(
                "threads are monkey-patched: not starting the file watcher thread; polling %s every %g s instead",
                self.directory,
                self.poll_interval,
            )
        else:
            with alarm_blocked():  # the observer's threads (its constructor starts one too)
                self._observer = Observer()
                self._observer.daemon = True
                self._observer.start()
            self._ensure_watch()
        self._poller = gevent.spawn(self._poll)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        for greenlet in (self._poller, self._settler):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._poller = self._settler = None
        if self._wakeup is not None:
            self._wakeup.close()
            self._wakeup = None

    def poke(self) -> None:
        """Something may have changed (hub thread): rescan once things are quiet."""
        self._last = monotonic()
        if self._settler is None:
            self._first = self._last
            self._settler = gevent.spawn(self._settle)

    def _settle(self) -> None:
        while True:
            wait = min(self._last + self.debounce, self._first + self.max_delay) - monotonic()
            if wait <= 0:
                break
            gevent.sleep(wait)
        self._settler = None  # events from here on start a new round
        if self._observer is not None:
            self._ensure_watch()  # before the rescan, so nothing written after it goes unseen
        self._signature = self.signature()
        try:
            self._on_settled()
        except Exception:
            self._log.exception("rescanning %s failed", self.directory)

    def _poll(self) -> None:
        while True:
            gevent.sleep(self.poll_interval)
            signature = self.signature()
            if signature != self._signature:
                self._signature = signature
                self.poke()

    def signature(self) -> tuple[tuple[str, int, int, int, int], ...]:
        """What the watched files look like to ``stat()`` (symlinks followed); the mode too, so a
        ``chmod`` that makes a refused identifier file acceptable (StrictModes) is noticed."""
        found = []
        for path in self._files(self.directory):
            try:
                st = path.stat()
            except OSError:
                continue
            found.append((path.name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode))
        return tuple(found)

    def _ensure_watch(self) -> None:
        """Watch the directory, or its nearest existing parent until it appears (or reappears)."""
        target = self.directory
        while not target.is_dir() and target.parent != target:
            target = target.parent
        try:
            key = (str(target), target.stat().st_ino)
            if key == self._watched:
                return
            self._observer.unschedule_all()
            with alarm_blocked():  # schedule() starts the emitter's threads
                self._observer.schedule(
                    _Forward(str(self.directory), self._send, self._relevant),
                    str(target),
                    recursive=False,
                    event_filter=WATCHED_EVENTS,
                )
            self._watched = key
        except OSError as exc:
            self._watched = None
            self._log.warning(
                "cannot watch %s (%s); polling every %g s instead", target, exc.strerror or exc, self.poll_interval
            )

    def _send(self) -> None:
        """Observer thread: the only thing it does with gevent."""
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup.send()


def _threads_are_greenlets() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover
        return False
    return monkey.is_module_patched("threading")
