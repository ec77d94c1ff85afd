"""What one serving process tells the admin endpoint: ``status-<pid>.json`` in the metrics directory.

Counters (connections, bytes, failures) travel as Prometheus multiprocess files; this file carries
what is *state*, not counts, and what has text: the routes of the config this process serves, its
last reload and that reload's error, each identifier with its version and last error, the backends
this process holds down and why, and how many connections are identifying. A greenlet rebuilds it
every :data:`PUBLISH_SECONDS` and rewrites the file only when it changed (write, then rename), so
the connection path does no work for it and the reader never sees half a file.

Written only while metrics are on (``admin:`` configured). The supervisor removes a dead worker's
file when it reaps it (``metrics.worker_exited``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent

from passthru import __version__, metrics
from passthru.metrics.files import status_file
from passthru.server.backends import BACKENDS

if TYPE_CHECKING:
    from passthru.server.service import Service

log = logging.getLogger("passthru.admin")

PUBLISH_SECONDS = 0.5


@dataclass(frozen=True)
class ReloadResult:
    """The last config (re)load of this process: when, whether it serves, and why not."""

    at: float
    ok: bool
    error: str | None = None


class WorkerState:
    """Publishes one serving process's state for ``/status.json`` (see the module docstring)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.started = time.time()
        self._greenlet: gevent.Greenlet | None = None
        self._written: str | None = None
        self._config_version: tuple[object, str | None] = (None, None)  # (runtime, its file's hash)

    def start(self) -> None:
        if metrics.directory() is not None and self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        directory = metrics.directory()
        if directory is not None:
            status_file(directory, os.getpid()).unlink(missing_ok=True)

    def _run(self) -> None:
        while True:
            try:
                self.publish()
            except Exception:
                log.exception("cannot publish this process's status; /status.json may be stale")
            gevent.sleep(PUBLISH_SECONDS)

    def publish(self) -> None:
        directory = metrics.directory()
        if directory is None:
            return
        text = json.dumps(self.snapshot(), sort_keys=True, default=str)
        if text == self._written:
            return
        path = status_file(directory, os.getpid())
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
        self._written = text

    def config_version(self, runtime: object) -> str | None:
        """The config file's hash, read once per loaded config (the version of its rules)."""
        if self._config_version[0] is not runtime:
            self._config_version = (runtime, file_version(self.service.current_runtime().config.path))
        return self._config_version[1]

    def snapshot(self) -> dict[str, Any]:
        service = self.service
        runtime = service.current_runtime()
        config = runtime.config
        reload = service.last_reload
        return {
            "pid": os.getpid(),
            "worker": service.worker,
            "started": self.started,
            "config": str(config.path),
            "routes": [describe_route(r) for r in config.routes],
            "default": config.default.name if config.default else None,
            "on_timeout": config.on_timeout.name if config.on_timeout else None,
            "reload": {"at": reload.at, "ok": reload.ok, "error": reload.error} if reload else None,
            "identifiers": identifiers(service, config.path, self.config_version(runtime)),
            "backends": {
                state.name: {"up": state.up, "why": down_reason(state), "open": state.active}
                for state in BACKENDS.states.values()
            },
            "identifying": service.counting.identifying,
        }


def describe_route(route: Any) -> dict[str, Any]:
    """A route as the status shows it (its match as text, its backends in order)."""
    match = {"protocol": route.protocol} if route.protocol else {}
    for key, values in route.fields.items():
        match[key] = [str(v) for v in values] if isinstance(values, list | tuple) else str(values)
    return {
        "name": route.name,
        "protocol": route.protocol,
        "match": match,
        "backends": [str(endpoint) for endpoint in route.to],
        "balance": route.balance,
    }


def down_reason(state: Any) -> str | None:
    if state.up:
        return None
    return state.connect_error or "; ".join(str(reason) for reason in state.failing_checks.values())


def identifiers(service: Service, config_path: Path, config_version: str | None) -> list[dict[str, Any]]:
    """Every identifier: user files (serving or not), then the config's rules and built-ins in use."""
    found: list[dict[str, Any]] = []
    user = service.user
    taken: set[str] = set()
    if user is not None:
        versions = user.versions()
        for status in user.statuses():
            taken.add(status.name)
            found.append(
                {
                    "name": status.name,
                    "source": "file",
                    "file": status.source,
                    "version": versions[status.source][:12] if status.source in versions else None,
                    "status": status.status,
                    "serving": status.serving,
                    "disabled": status.status == "disabled",
                    "error": status.last_error,
                }
            )
    for identifier in service.current_runtime().trusted:
        if identifier.name in taken:
            continue  # a user file took its name
        builtin = identifier.source == "builtin"
        found.append(
            {
                "name": identifier.name,
                "source": "built-in" if builtin else "config",
                "file": None if builtin else f"{config_path} ({identifier.source})",
                "version": __version__ if builtin else config_version,
                "status": "active",
                "serving": True,
                "disabled": False,
                "error": None,
            }
        )
    return found


def file_version(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return None
