"""Prometheus metrics: the hooks the server calls, summed over worker processes.

Lifecycle (the top process: the supervisor, or the only process when ``workers: 1``):
``setup()`` before forking any worker, ``worker_exited(pid)`` when the supervisor reaps one,
``cleanup()`` at exit. Until ``setup()`` every hook is a no-op, so ``passthru identify``, unit
tests and a config without ``admin:`` pay one global lookup per call and nothing else.

Hooks run in the serving process (the gevent hub thread). Each is a few dictionary lookups and
an mmap write, never per byte; none raises: a metrics failure is logged once and never breaks a
connection. Label values must be names from the config or words from Passthru's code, never
client input (see ``definitions.py``).
"""

from __future__ import annotations

import errno
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

from prometheus_client import CollectorRegistry

from passthru.connlog import ConnectionRecord
from passthru.metrics.definitions import Metrics
from passthru.metrics.files import MultiprocessDirectory

log = logging.getLogger("passthru.metrics")

#: ``upstream_failed`` reasons (``closed``: accepted, then closed before answering); anything
#: else is counted as ``error``.
UPSTREAM_REASONS = frozenset({"refused", "timeout", "unreachable", "reset", "closed", "error"})
#: Route / protocol label values for a connection that had none.
NO_ROUTE = "none"
NO_PROTOCOL = "unknown"

_directory: MultiprocessDirectory | None = None
_metrics: Metrics | None = None
_error_logged = False

P = ParamSpec("P")


# -- lifecycle (top process) -----------------------------------------------------------------
def setup(directory: Path | None = None) -> Path:
    """Enable metrics in this process and the workers it forks from now on; returns the
    multiprocess directory (a fresh temporary one unless ``directory`` is given, which is emptied)."""
    global _directory, _metrics
    if _directory is not None:
        cleanup()
    _directory = MultiprocessDirectory(directory)
    _metrics = None
    return _directory.path


def worker_exited(pid: int) -> None:
    """The supervisor reaped worker ``pid``: its active connections and readiness stop counting."""
    if _directory is not None:
        _directory.process_exited(pid)


def cleanup() -> None:
    """Disable metrics and delete the directory ``setup()`` made (top process, at exit)."""
    global _directory, _metrics, _error_logged
    if _directory is not None:
        _directory.close()
    _directory, _metrics, _error_logged = None, None, False


def enabled() -> bool:
    return _directory is not None


def directory() -> Path | None:
    """The multiprocess directory (per-worker status files live there too), or None when off."""
    return _directory.path if _directory is not None else None


def registry() -> CollectorRegistry:
    """What ``/metrics`` serves: every process's files, summed. Requires ``setup()``."""
    if _directory is None:
        raise RuntimeError("passthru.metrics.setup() has not been called")
    return _directory.registry()


def ready() -> bool:
    """True while at least one process has its listeners bound and is not draining."""
    return _directory is not None and _directory.gauge_total("passthru_serving_processes") >= 1


# -- hooks (serving process) -----------------------------------------------------------------
def _recorder() -> Metrics | None:
    """This process's metrics, created on first use (so in the worker, after the fork)."""
    global _metrics
    if _metrics is None and _directory is not None:
        _metrics = Metrics()
    return _metrics


def _hook(function: Callable[P, None]) -> Callable[P, None]:
    """Never let metrics break serving: the first failure is logged, later ones pass silently
    (a full temporary file system may recover; a connection must not pay for it either way)."""

    @functools.wraps(function)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        global _error_logged
        try:
            function(*args, **kwargs)
        except Exception:
            if not _error_logged:
                _error_logged = True
                log.exception("recording a metric failed; further metric errors are not logged")

    return guarded


def connection_opened() -> None:
    """A connection was accepted (one at a time; the server tallies them, ``ConnectionTally``)."""
    tally = ConnectionTally()
    tally.opened = 1
    connections_batch(tally)


def identified(seconds: float) -> None:
    """Reading the prefix ended with a verdict (identified, no match, byte limit or the client's
    half-close, with at least one byte read): ``seconds`` since accept."""
    tally = ConnectionTally()
    tally.identify_seconds.append(seconds)
    connections_batch(tally)


@_hook
def identify_timeout(bytes_read: int) -> None:
    """``timeouts.identify`` ran out before a verdict (``bytes_read`` 0: a silent client)."""
    if (m := _recorder()) is not None:
        m.identify_timeouts.labels("empty" if bytes_read == 0 else "partial").inc()


@_hook
def unmatched(protocol: str | None) -> None:
    """The client sent bytes and no route rule matched them: ``default`` applies."""
    if (m := _recorder()) is not None:
        m.unmatched.labels(protocol or NO_PROTOCOL).inc()


def routed(route: str, protocol: str | None) -> None:
    """A route was chosen for the connection (``record.route`` set; ``protocol`` is
    ``record.protocol``): it is open on that route and protocol until ``connection_closed``."""
    tally = ConnectionTally()
    tally.routed(route, protocol)
    connections_batch(tally)


@_hook
def connection_closed(record: ConnectionRecord) -> None:
    """A connection ended: count it and its bytes, and it is no longer active."""
    tally = ConnectionTally()
    tally.connection_closed(record)
    connections_batch(tally)


@_hook
def connections_batch(tally: ConnectionTally) -> None:
    """Apply what a :class:`ConnectionTally` counted since the last batch: one write per label
    set instead of several per connection (each write of a multiprocess value is a lock, a
    ``getpid()`` system call and an mmap write)."""
    if (m := _recorder()) is not None:
        if tally.opened != tally.closed_count:
            m.active.inc(tally.opened - tally.closed_count)
        if tally.opened:
            m.opened.inc(tally.opened)
        for (route, protocol, ended), count in tally.closed.items():
            m.connections.labels(route, protocol, ended).inc(count)
        for (route, direction), count in tally.bytes.items():
            m.bytes.labels(route, direction).inc(count)
        for route, delta in tally.route_open.items():
            if delta:
                m.route_open.labels(route).inc(delta)
        for protocol, delta in tally.protocol_open.items():
            if delta:
                m.protocol_open.labels(protocol).inc(delta)
        for seconds in tally.identify_seconds:
            m.identify_seconds.observe(seconds)


class ConnectionTally:
    """Per-connection counts kept as plain integers in the serving process, and applied to the
    metrics in batches (``connections_batch``) a fraction of a second later."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed_count = 0
        self.closed: Counter[tuple[str, str, str]] = Counter()
        self.bytes: Counter[tuple[str, str]] = Counter()
        self.route_open: Counter[str] = Counter()  # change of the connections open per route
        self.protocol_open: Counter[str] = Counter()
        self.identify_seconds: list[float] = []

    def routed(self, route: str, protocol: str | None) -> None:
        self.route_open[route] += 1
        self.protocol_open[protocol or NO_PROTOCOL] += 1

    def connection_closed(self, record: ConnectionRecord) -> None:
        if record.route:
            self.route_open[record.route] -= 1
            self.protocol_open[record.protocol or NO_PROTOCOL] -= 1
        route = record.route or NO_ROUTE
        self.closed_count += 1
        self.closed[(route, record.protocol or NO_PROTOCOL, record.ended)] += 1
        if record.bytes_up:
            self.bytes[(route, "up")] += record.bytes_up
        if record.bytes_down:
            self.bytes[(route, "down")] += record.bytes_down

    def empty(self) -> bool:
        return not (self.opened or self.closed_count or self.identify_seconds or self.route_open)


@_hook
def upstream_failed(route: str, backend: str, reason: str) -> None:
    """One attempt to reach ``backend`` (its configured address) failed: the connect, or the
    backend dropped the connection before answering. ``reason`` from ``failure_reason()`` or
    one of ``UPSTREAM_REASONS``."""
    if (m := _recorder()) is not None:
        m.upstream_failures.labels(route, backend, reason if reason in UPSTREAM_REASONS else "error").inc()


@_hook
def reload(ok: bool) -> None:
    """A config reload finished: swapped in (``ok``) or rejected, the old config still serving."""
    if (m := _recorder()) is not None:
        m.reloads.labels("ok" if ok else "rejected").inc()
        m.reload_successful.set(1 if ok else 0)
        if ok:
            m.reload_timestamp.set(time.time())


@_hook
def identifier_error(name: str, kind: str) -> None:
    """A user identifier file failed: ``kind`` is ``load`` (rejected version: syntax, import,
    sample), ``runtime`` (identify() raised or returned no verdict), ``timeout`` or ``disabled``."""
    if (m := _recorder()) is not None:
        m.identifier_errors.labels(name, kind).inc()


@_hook
def limit_hit(kind: str) -> None:
    """A connection was refused by a limit: ``kind`` is the ``end=`` word the handler logs
    (``limit_per_source``, ``rate_per_source``, ``limit_identifying``, ...)."""
    if (m := _recorder()) is not None:
        m.limit_rejections.labels(kind).inc()


@_hook
def started() -> None:
    """The config is loaded and every listener is bound: this process is ready."""
    if (m := _recorder()) is not None:
        m.serving.set(1)
        m.reload_successful.set(1)
        m.reload_timestamp.set(time.time())


@_hook
def draining() -> None:
    """Shutdown began (listeners closing): this process is no longer ready."""
    if (m := _recorder()) is not None:
        m.serving.set(0)


def failure_reason(exc: BaseException) -> str:
    """A bounded ``upstream_failed`` reason for a connect error."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
        return "unreachable"
    return "error"
