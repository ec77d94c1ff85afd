"""Samples of the traffic nothing identified (``capture:``), for writing and testing identifiers.

The connection path calls :meth:`Capture.offer` once, where its route is decided. ``offer`` only
checks ``when`` and puts a copy of the first bytes on a small bounded queue: it never blocks, never
raises, and drops the sample when the queue is full. A background thread (one per serving process,
started on first use, so after the fork) does everything that touches the disk:

* **rate** (``rate: 10/s``, across all workers): a 16-byte file ``.rate`` in the directory holds
  (window number, samples written in it), read and updated under ``flock``. The lock is held for a
  ``pread`` and a ``pwrite``, so workers never wait on each other for long, and the count is exact:
  never more than ``rate`` samples per window in total, whatever the number of workers.
* **files**: ``<UTC time>-<connection id>.bin`` holds exactly the bytes read (up to ``max_bytes``),
  and ``.json`` beside it says client, listener, reason and length. Both are written under a
  temporary name and renamed, the ``.json`` first, so a reader never sees half a sample. Mode 0600
  in a 0700 directory: samples are what clients sent, and may be private.
* **max_files**: after each sample the oldest ``.bin`` (names sort by time) and their ``.json``
  are removed beyond ``max_files``.
* **errors**: a full disk or an unusable directory is logged once (by each worker that meets
  it); capture then pauses for :data:`PAUSE_SECONDS` and tries again, logging only when it works
  again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from passthru.config.operating import CaptureSettings

log = logging.getLogger("passthru.capture")

#: After a write failed (full disk, bad directory): how long capture stays paused.
PAUSE_SECONDS = 60.0
#: Samples waiting for the writer thread; more are dropped (the rate limit drops most anyway).
QUEUE_SIZE = 64
RATE_FILE = ".rate"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def reasons(stopped: str, unmatched: bool, rejected: bool) -> tuple[str, ...]:
    """Why a connection's first bytes might be captured: ``timeout`` (``timeouts.identify`` ran out),
    ``unmatched`` (no route rule matched the bytes), ``rejected`` (closed, not forwarded)."""
    found = []
    if stopped == "timeout":
        found.append("timeout")
    if unmatched:
        found.append("unmatched")
    if rejected:
        found.append("rejected")
    return tuple(found)


@dataclass(frozen=True)
class Sample:
    data: bytes
    received: int  # bytes the client had sent (data may be cut to max_bytes)
    reason: str
    reasons: tuple[str, ...]
    client: str
    listener: str
    connection: str
    at: float


class RateWindow:
    """At most ``count`` grants per ``period`` seconds, shared by every process using ``path``."""

    def __init__(self, path: Path, count: int, period: float) -> None:
        self.path, self.count, self.period = path, count, period
        self.fd: int | None = None

    def take(self, now: float) -> bool:
        if self.fd is not None and os.fstat(self.fd).st_nlink == 0:
            self.close()  # the directory was removed and made again: share the new file
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        window = int(now // self.period)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            raw = os.pread(self.fd, 16, 0)
            current, used = (int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little"))
            if len(raw) < 16 or current != window:
                current, used = window, 0
            if used >= self.count:
                return False
            os.pwrite(self.fd, window.to_bytes(8, "little") + (used + 1).to_bytes(8, "little"), 0)
            return True
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


class Capture:
    """One ``capture:`` setting's writer in this process (see the module docstring)."""

    def __init__(self, settings: CaptureSettings) -> None:
        self.settings = settings
        self.directory = settings.directory
        self.when = frozenset(settings.when)
        self.queue: queue.Queue[Sample | None] = queue.Queue(QUEUE_SIZE)
        self.rate = RateWindow(self.directory / RATE_FILE, *settings.rate)
        self.paused_until = 0.0
        self.failing = False  # the failure was logged; log again only after a success
        self.written = self.dropped = 0
        self._thread: threading.Thread | None = None
        self._pid = 0

    # -- the connection path -------------------------------------------------------------------
    def offer(self, data: bytes, why: Iterable[str], client: str, listener: str, conn_id: str) -> None:
        """Capture ``data`` if one of the connection's reasons is in ``when``. Never blocks or raises."""
        try:
            reason = next((r for r in why if r in self.when), None)
            if reason is None or not data or time.monotonic() < self.paused_until:
                return
            sample = Sample(
                data[: self.settings.max_bytes], len(data), reason, tuple(why), client, listener, conn_id, time.time()
            )
            self._ensure_writer()
            self.queue.put_nowait(sample)
        except queue.Full:
            self.dropped += 1
        except Exception:  # a bug here must never reach the connection
            if not self.failing:
                self.failing = True
                log.exception("capture: cannot queue a sample; capture goes on without it")

    def _ensure_writer(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        # first use; or a forked worker (the parent's thread did not come along); or this setting
        # serves again after close() (a reload that failed to listen restored the old runtime)
        self._pid = os.getpid()
        self.queue = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="passthru-capture", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the writer after what is queued (a reload replaced this setting)."""
        if self._thread is not None and self._pid == os.getpid():
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(None)

    # -- the writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while (sample := self.queue.get()) is not None:
            try:
                if self._write_if_allowed(sample):
                    self.written += 1
            except Exception:
                log.exception("capture: unexpected error writing a sample")
        self.rate.close()

    def _write_if_allowed(self, sample: Sample) -> bool:
        if time.monotonic() < self.paused_until:
            return False
        try:
            self._prepare_directory()
            if not self.rate.take(sample.at):
                return False
            name = sample_name(sample)
            self._write(name + ".json", json.dumps(describe(sample), indent=2).encode() + b"\n")
            self._write(name + ".bin", sample.data)
            self._prune()
        except OSError as exc:
            self.rate.close()
            self.paused_until = time.monotonic() + PAUSE_SECONDS
            if not self.failing:
                self.failing = True
                log.error(
                    "capture: cannot write samples to %s: %s; capture paused in process %d "
                    "(retried every %.0fs, logged once)",
                    self.directory,
                    exc.strerror or exc,
                    os.getpid(),
                    PAUSE_SECONDS,
                )
            return False
        if self.failing:
            self.failing = False
            log.info("capture: writing samples to %s again", self.directory)
        return True

    def _prepare_directory(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)  # whatever the umask: samples may be private
            log.info("capture: created %s (mode 0700)", self.directory)

    def _write(self, name: str, data: bytes) -> None:
        temporary = self.directory / f".tmp-{os.getpid()}-{name}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        os.close(fd)
        os.rename(temporary, self.directory / name)

    def _prune(self) -> None:
        samples = sorted(entry.name for entry in os.scandir(self.directory) if entry.name.endswith(".bin"))
        for name in samples[: max(0, len(samples) - self.settings.max_files)]:
            for path in (self.directory / name, self.directory / (name[: -len(".bin")] + ".json")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def utc(at: float, layout: str) -> str:
    """``at`` in UTC with microseconds, e.g. layout ``%Y%m%dT%H%M%S`` gives ``20261130T101500.123456Z``."""
    return f"{time.strftime(layout, time.gmtime(at))}.{int(at % 1 * 1_000_000):06d}Z"


def sample_name(sample: Sample) -> str:
    """``20261130T101500.123456Z-0-17``: UTC time first, so names sort oldest first."""
    return f"{utc(sample.at, '%Y%m%dT%H%M%S')}-{_UNSAFE.sub('_', sample.connection)}"


def describe(sample: Sample) -> dict[str, object]:
    """The ``.json`` beside a sample."""
    return {
        "client": sample.client,
        "listener": sample.listener,
        "reason": sample.reason,
        "reasons": list(sample.reasons),
        "length": len(sample.data),
        "received": sample.received,
        "connection": sample.connection,
        "time": utc(sample.at, "%Y-%m-%dT%H:%M:%S"),
    }


_current: Capture | None = None


def capture_for(settings: CaptureSettings | None) -> Capture | None:
    """The process's writer for ``settings`` (kept across reloads while the setting is unchanged)."""
    global _current
    if _current is not None and _current.settings == settings:
        return _current
    if _current is not None:
        _current.close()
    _current = Capture(settings) if settings is not None else None
    return _current
