"""The running server of one process: listeners, the current runtime, signals, reloads.

The accept loops (one :class:`Acceptor` per listen address) and the connections they start
are separate objects, as in gevent's own server module; what the connections of this process
share (counting, observers) is one :class:`ConnectionContext`. A reload builds a complete
new ``Runtime`` first and swaps one reference, so connections see either the old rules or the
new ones, never a mix; listeners are started or stopped to match the new ``listen`` list.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import gevent
from gevent.event import Event

from passthru import metrics
from passthru.admin.worker_state import ReloadResult, WorkerState
from passthru.bootstrap import identifiers_dir_for, load_with_identifiers
from passthru.config import Config, ConfigErrors
from passthru.connlog import CONNECTIONS
from passthru.plugins import UserIdentifiers
from passthru.server.acceptor import Acceptor
from passthru.server.connection import ConnectionContext
from passthru.server.counting import Counting
from passthru.server.health import HealthMonitor
from passthru.server.lifecycle import End, Observers
from passthru.server.listener import defer_accept, listen_socket
from passthru.server.notify import READY, RELOADING, STOPPING, notify
from passthru.server.observers import CaptureObserver, LogObserver, MetricsObserver
from passthru.server.privileges import drop_privileges
from passthru.server.resolver import RESOLVER
from passthru.server.runtime import Runtime, listener_key
from passthru.server.upstream import check_transparent
from passthru.watching import DirectoryWatcher

log = logging.getLogger("passthru.server")

#: How long SIGTERM/SIGINT waits for relaying connections before closing them.
DRAIN_SECONDS = 5.0


class Service:
    """Owns the listeners and the current ``Runtime`` of one (worker) process."""

    def __init__(
        self,
        config_path: str | Path,
        *,
        user: UserIdentifiers | None = None,
        log_format: str | None = None,
        worker: int = 0,
        reuse_port: bool = False,
    ) -> None:
        self.config_path = Path(config_path)
        self.worker = worker
        self.reuse_port = reuse_port
        self.user: UserIdentifiers | None = user  # loaded already by `passthru run`, or here
        self._runtime: Runtime | None = None
        self.servers: dict[tuple, Acceptor] = {}
        self.stopped = Event()
        self._config_watcher: DirectoryWatcher | None = None
        self._config_digest: str | None = None
        self._starting = False  # signals that come meanwhile wait in _deferred
        self._deferred: list[Callable[[], object]] = []
        self.counting = Counting()
        self.counting.on_capacity = self.resume_accepting
        observers = Observers([MetricsObserver(), LogObserver(log_format), CaptureObserver()])
        self.context = ConnectionContext(self.current_runtime, lambda: self.user, self.counting, observers, worker)
        self.health = HealthMonitor()  # backend checks of the current config (pools)
        self.last_reload: ReloadResult | None = None  # for /status.json
        self.status = WorkerState(self)

    # -- state ---------------------------------------------------------------------------
    def current_runtime(self) -> Runtime:
        assert self._runtime is not None, "service not started"
        return self._runtime

    def load(self) -> Config:
        """Load and validate the config; user identifiers are loaded first so routes may name them."""
        config, self.user = load_with_identifiers(self.config_path, self.user)
        return config

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._config_digest = file_digest(self.config_path)  # before loading: see watch_config
        config = self.load()
        self._runtime = Runtime.build(config)
        self.sync_listeners(config)
        drop_privileges(config.user, config.group)  # listen sockets are bound: root is not needed now
        check_transparent(config.routes)  # with the privileges that are left
        self.health.apply(config)  # pools: start backend checks
        RESOLVER.apply(config)  # backend names: looked up again in the background
        assert self.user is not None
        for watch, what in ((self.user.start_watching, self.user.directory), (self.watch_config, self.config_path)):
            try:
                watch()
            except OSError as exc:  # e.g. unreadable after dropping privileges: serve, but say so
                log.error("cannot watch %s (%s): changes there need SIGHUP or a restart", what, exc)
        self.log_startup(config)
        self.last_reload = ReloadResult(time.time(), True)
        self.status.start()
        metrics.started()
        # What start-up made (modules, config, identifiers) lives as long as the process: moved
        # out of the collector's sight, a full collection no longer walks it (it did every few
        # thousand connections, which cost about 2 µs per connection).
        gc.freeze()
        notify(READY)  # every listener is bound

    def sync_listeners(self, config: Config) -> None:
        """Start listeners the config names and we lack; stop those it no longer names."""
        wanted = {listener_key(listener): listener for listener in config.listeners}
        for key in [k for k in self.servers if k not in wanted]:
            server = self.servers.pop(key)
            log.info("stopped listening on %s", server.address_text)
            server.close()
        deferred = silent_clients_refused(config) and config.timeouts.identify
        for key, listener in wanted.items():
            if key in self.servers:
                self.servers[key].max_connections = listener.max_connections
                continue
            address = listener.address
            sock = listen_socket(address.family, address.sockaddr, reuse_port=self.reuse_port, defer=deferred or 0)
            server = Acceptor(
                sock,
                self.context.accept,
                self.counting,
                lambda: self.current_runtime().config.limits,
                key,
                str(listener.address),
                listener.max_connections,
            )
            server.start()
            self.servers[key] = server
            log.info("listening on %s", listener.address)
        for server in self.servers.values():  # a reload may turn it on or off for the others
            defer_accept(server.sock, deferred or 0)

    def resume_accepting(self) -> None:
        """A connection closed: listeners paused at ``max_connections`` may accept again."""
        for server in self.servers.values():
            if server.paused and not server.full():
                server.resume()

    def log_startup(self, config: Config) -> None:
        for route in config.routes:
            to = route.template.text if route.template else ", ".join(str(t) for t in route.to)
            log.info("route %s: %s -> %s", route.name, route.match_text(), to)
        log.info("default: %s; on_timeout: %s", describe_target(config.default), describe_target(config.on_timeout))
        assert self._runtime is not None
        names = [i.name for i in self._runtime.identifiers(self.user)]
        log.info("identifiers: %s", ", ".join(names))

    def reload(self) -> bool:
        """Validate the config file and swap it in; on any error keep serving the old one."""
        notify(RELOADING)
        try:
            return self._reload()
        finally:
            notify(READY)

    def _reload(self) -> bool:
        try:
            self.follow_identifiers_dir()
            config = self.load()
        except ConfigErrors as errors:
            log.error("reload rejected, still serving the previous config:\n%s", errors)
            metrics.reload(False)
            self.last_reload = ReloadResult(time.time(), False, str(errors))
            return False
        previous, self._runtime = self._runtime, Runtime.build(config)
        try:
            self.sync_listeners(config)
        except OSError as exc:
            self._runtime = previous
            log.error("reload rejected, cannot listen: %s; still serving the previous config", exc)
            metrics.reload(False)
            self.last_reload = ReloadResult(time.time(), False, f"cannot listen: {exc}")
            return False
        self.health.apply(config)  # pools: keep, replace or stop backend checks
        check_transparent(config.routes)
        RESOLVER.apply(config)
        metrics.reload(True)
        self.last_reload = ReloadResult(time.time(), True)
        log.info("reloaded %s: %d routes", self.config_path, len(config.routes))
        return True

    def follow_identifiers_dir(self) -> None:
        """When the config moves ``identifiers_dir``, load and watch the new directory."""
        directory = identifiers_dir_for(self.config_path)
        if self.user is not None and self.user.directory == directory:
            return
        user = UserIdentifiers(directory)
        user.load_all()
        user.start_watching()
        if self.user is not None:
            self.user.stop()
        self.user = user

    def watch_config(self) -> None:
        """Reload when the config file's content changes (editors' rename-over saves, in-place
        writes, Kubernetes ``..data`` swaps), within a second; unchanged content is ignored.
        The digest compared against is the file's as ``start`` read it, before loading: a change
        made while the listeners were coming up (before the watcher ran) is caught by the check
        right after the watcher starts, instead of being taken for the content already served."""
        path = self.config_path.absolute()
        self._config_watcher = DirectoryWatcher(
            path.parent,
            self._config_file_changed,
            log=log,
            relevant=lambda name: name == path.name,
            files=lambda _directory: [path],
        )
        self._config_watcher.start()
        gevent.spawn(self._config_file_changed)  # anything that changed since start read it

    def _config_file_changed(self) -> None:
        digest = file_digest(self.config_path)
        if digest is None or digest == self._config_digest:
            return  # gone for a moment (some editors) or the same bytes: nothing to do
        self._config_digest = digest
        self.reload()

    def on_sighup(self) -> None:
        """SIGHUP: re-read the config and rescan the identifiers, whatever changed."""
        self._config_digest = file_digest(self.config_path)
        if self.user is not None:
            self.user.rescan()
        self.reload()

    def stop(self, drain: float = DRAIN_SECONDS) -> None:
        """Stop accepting, let connections finish for up to ``drain`` seconds, then close them."""
        metrics.draining()
        notify(STOPPING)
        for server in self.servers.values():
            server.close()
        self.health.stop()  # pools: no more backend checks
        RESOLVER.stop()
        connections = self.counting
        if not connections.wait_empty(drain):
            log.info("closing %d connections still open after %.1fs", len(connections), drain)
            connections.close_all(End.SHUTDOWN)
        connections.stop()
        if self.user is not None:
            self.user.stop()
        if self._config_watcher is not None:
            self._config_watcher.stop()
        CONNECTIONS.flush()
        self.status.stop()
        self.stopped.set()

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT; SIGHUP reloads the config. The handlers are in place
        before the listeners are bound: a signal that comes during start-up is acted on once
        start-up is done, instead of killing the process (the signals' default action)."""
        self._starting = True
        gevent.signal_handler(signal.SIGTERM, self._on_signal, "SIGTERM", self._on_stop_signal)
        gevent.signal_handler(signal.SIGINT, self._on_signal, "SIGINT", self._on_stop_signal)
        gevent.signal_handler(signal.SIGHUP, self._on_signal, "SIGHUP", lambda _: gevent.spawn(self.on_sighup))
        try:
            self.start()
        finally:
            self._starting = False
        for action in self._deferred:
            action()
        self.stopped.wait()

    def _on_signal(self, name: str, action: Callable[[str], object]) -> None:
        if self._starting:
            self._deferred.append(lambda: action(name))
        else:
            action(name)

    def _on_stop_signal(self, name: str) -> None:
        log.info("%s received: stopping (drain up to %.0fs)", name, DRAIN_SECONDS)
        gevent.spawn(self.stop)


def file_digest(path: Path) -> str | None:
    """The sha256 of a file's content (following symlinks), or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def silent_clients_refused(config: Config) -> bool:
    """True when a client that sends nothing can only be refused (no ``on_timeout`` route, no
    catch-all first route): then the kernel may hold clients back until they send bytes
    (``TCP_DEFER_ACCEPT``), and the first read of every connection finds them."""
    first = config.routes[0] if config.routes else None
    return config.on_timeout is None and not (first is not None and first.catch_all)


def describe_target(route) -> str:  # type: ignore[no-untyped-def]
    if route is None:
        return "reject"
    return f"{route.name} ({', '.join(str(t) for t in route.to)})"
