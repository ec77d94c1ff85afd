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


@_hook
def connection_opened() -> None:
    """A connection was accepted (call before anything can fail)."""
    if (m := _recorder()) is not None:
        m.active.inc()
        m.opened.inc()


@_hook
def identified(seconds: float) -> None:
    """Reading the prefix ended with a verdict (identified, no match, byte limit or the client's
    half-close, with at least one byte read): ``seconds`` since accept."""
    if (m := _recorder()) is not None:
        m.identify_seconds.observe(seconds)


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


@_hook
def routed(route: str, protocol: str | None) -> None:
    """A route was chosen for the connection (``record.route`` set; ``protocol`` is
    ``record.protocol``): it is open on that route and protocol until ``connection_closed``."""
    if (m := _recorder()) is not None:
        m.route_open.labels(route).inc()
        m.protocol_open.labels(protocol or NO_PROTOCOL).inc()


@_hook
def connection_closed(record: ConnectionRecord) -> None:
    """A connection's log line was written: count it and its bytes, and it is no longer active."""
    if (m := _recorder()) is not None:
        m.active.dec()
        if record.route:
            m.route_open.labels(record.route).dec()
            m.protocol_open.labels(record.protocol or NO_PROTOCOL).dec()
        route = record.route or NO_ROUTE
        m.connections.labels(route, record.protocol or NO_PROTOCOL, record.ended).inc()
        if record.bytes_up:
            m.bytes.labels(route, "up").inc(record.bytes_up)
        if record.bytes_down:
            m.bytes.labels(route, "down").inc(record.bytes_down)


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
