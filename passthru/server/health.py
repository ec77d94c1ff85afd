"""Background checks that find backends dead and bring them back (one greenlet per check).

Two kinds, both dialing only addresses the current config names:

* **Active checks**, for the backends of a route with ``health_check``: every ``interval`` a TCP
  connect, then ``send`` if set, then the reply must start with ``expect`` if set, all within
  ``timeout``. ``fall`` failures in a row mark the backend down, ``rise`` successes in a row mark
  it up (counting restarts when a client's failed connect marked it down meanwhile). One check
  per backend per distinct ``health_check`` spec: routes naming the same backend with the same
  spec share it; with different specs the backend is up only while every check passes.
* **Recovery probes**, for backends no route checks actively: once a client's failed connect
  marked one down, a plain TCP connect every ``RECOVERY_INTERVAL`` (within ``timeouts.connect``)
  marks it up on the first success, so pools recover without any configuration (like HAProxy's
  ``observe layer4`` with ``check``). While the backend is up the probe sends nothing.

``HealthMonitor.apply(config)`` runs on start and on every reload: checks the new config still
wants keep running (with their counters), the others stop and their verdicts stop counting, new
ones start. ``stop()`` ends them all. Each worker process runs its own checks.
"""

from __future__ import annotations

import enum
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import gevent
from gevent import socket as gsocket

from passthru.config import Config, Endpoint, Route
from passthru.config.model import HealthCheck
from passthru.server.backends import BACKENDS, BackendKey, Backends, BackendState, backend_key
from passthru.server.resolver import RESOLVER
from passthru.server.upstream import LOCAL_ERRNOS, down_reason

log = logging.getLogger("passthru.backends")

#: How often a down backend without ``health_check`` is probed.
RECOVERY_INTERVAL = 2.0
#: The most of a reply a failed check shows in the log.
SHOWN_REPLY = 32


class Skipped(enum.Enum):
    """``Check.attempt``'s answer when a round says nothing about the backend."""

    ROUND = "skipped"


SKIPPED = Skipped.ROUND


def probe(endpoint: Endpoint, spec: HealthCheck) -> str | None:
    """One check: None when it passed, else why it failed (for the DOWN log line). Raises
    OSError only when this process cannot even make a socket (EMFILE, ...)."""
    family, sockaddr = RESOLVER.address(endpoint)
    sock = gsocket.socket(family, socket.SOCK_STREAM)
    timer = gevent.Timeout(spec.timeout)
    timer.start()
    stage = "connect"
    try:
        sock.connect(sockaddr)
        if spec.send:
            stage = "send"
            sock.sendall(spec.send)
        if spec.expect:
            stage = "reply"
            return check_reply(sock, spec.expect)
        return None
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        return f"{stage} timed out after {spec.timeout:g}s"
    except OSError as exc:
        if stage == "connect" and exc.errno in LOCAL_ERRNOS:
            raise
        return down_reason(exc) if stage == "connect" else f"{stage} failed: {down_reason(exc)}"
    finally:
        timer.close()
        sock.close()


def check_reply(sock: gsocket.socket, expect: bytes) -> str | None:
    """Read until the reply can be compared with ``expect``; None when it starts with it."""
    reply = b""
    while len(reply) < len(expect):
        chunk = sock.recv(len(expect) - len(reply))
        if not chunk:
            shown = f"after {reply[:SHOWN_REPLY]!r}" if reply else "without replying"
            return f"closed {shown} (expected a reply starting with {expect[:SHOWN_REPLY]!r})"
        reply += chunk
        if not expect.startswith(reply):
            break
    if reply.startswith(expect):
        return None
    return f"unexpected reply {reply[:SHOWN_REPLY]!r} (expected it to start with {expect[:SHOWN_REPLY]!r})"


@dataclass(eq=False)
class Check:
    """One backend checked with one spec, by one greenlet. ``recover_only``: a recovery probe."""

    endpoint: Endpoint
    state: BackendState
    spec: HealthCheck
    routes: list[str]
    recover_only: bool = False
    successes: int = 0
    failures: int = 0
    epoch: int = 0
    greenlet: gevent.Greenlet | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """How log lines name the routes: ``route api`` or ``routes api, web``."""
        return f"route{'s' if len(self.routes) > 1 else ''} {', '.join(self.routes)}"

    def start(self) -> None:
        self.epoch = self.state.epoch
        self.greenlet = gevent.spawn(self.run_recovery if self.recover_only else self.run)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None
        self.state.check_removed(self, self.label)

    def run(self) -> None:
        while True:
            outcome = self.attempt()
            if not isinstance(outcome, Skipped):
                self.record(outcome)
            gevent.sleep(self.spec.interval)

    def run_recovery(self) -> None:
        while True:
            gevent.sleep(self.spec.interval)
            if self.state.connect_error is not None and self.attempt() is None:
                self.state.connect_succeeded(self.label, "a background connect succeeded")

    def attempt(self) -> str | Skipped | None:
        """``probe()``, except that a shortage of our own (EMFILE, ...) or a bug is no verdict
        on the backend: that round is SKIPPED, and the check lives on."""
        try:
            return probe(self.endpoint, self.spec)
        except OSError as exc:
            if exc.errno not in LOCAL_ERRNOS:
                raise
            log.debug("check of %s skipped: %s", self.endpoint, exc)
        except Exception:
            log.exception("check of backend %s failed unexpectedly; it will run again", self.endpoint)
        return SKIPPED

    def record(self, failure: str | None) -> None:
        """Count one result; tell the state when a streak reaches ``fall`` or ``rise``."""
        state = self.state
        if state.epoch != self.epoch:  # a client's connect failed since: count ``rise`` afresh
            self.epoch, self.successes = state.epoch, 0
        if failure is None:
            self.failures = 0
            self.successes += 1
            held_down = self in state.failing_checks or state.connect_error is not None
            if self.successes >= self.spec.rise and held_down:
                how = f"health check passed {self.successes} time{'s' if self.successes > 1 else ''} in a row"
                state.check_passed(self, self.label, how)
            return
        self.successes = 0
        self.failures += 1
        if self.failures >= self.spec.fall and self not in state.failing_checks:
            plural = "s" if self.failures > 1 else ""
            state.check_failed(self, f"{failure} ({self.failures} consecutive failure{plural})", self.label)


CheckKey = tuple[BackendKey, HealthCheck, bool]


@dataclass
class Planned:
    endpoint: Endpoint
    spec: HealthCheck
    recover_only: bool
    routes: list[str]


def plan(config: Config) -> dict[CheckKey, Planned]:
    """The checks ``config`` wants: one per backend per ``health_check`` spec, or one recovery
    probe for a backend no route checks actively."""
    active: dict[CheckKey, Planned] = {}
    passive: dict[BackendKey, Planned] = {}
    recovery = HealthCheck(interval=RECOVERY_INTERVAL, timeout=config.timeouts.connect, rise=1, fall=1)
    for route in serving_routes(config):
        for endpoint, _weight in route.backends:
            bkey = backend_key(endpoint)
            spec = route.health_check
            if spec is None:
                planned = passive.setdefault(bkey, Planned(endpoint, recovery, True, []))
            else:
                planned = active.setdefault((bkey, spec, False), Planned(endpoint, spec, False, []))
            if route.name not in planned.routes:
                planned.routes.append(route.name)
    checked = {bkey for bkey, _spec, _recover in active}
    probes = {(bkey, p.spec, True): p for bkey, p in passive.items() if bkey not in checked}
    return {**active, **probes}


def serving_routes(config: Config) -> Iterable[Route]:
    """The rules, then ``default`` and ``on_timeout`` when they are addresses of their own."""
    seen: set[str] = set()
    for route in (*config.routes, config.default, config.on_timeout):
        if route is not None and route.name not in seen:
            seen.add(route.name)
            yield route


class HealthMonitor:
    """The checks of the current config of one process."""

    def __init__(self, backends: Backends = BACKENDS) -> None:
        self.backends = backends
        self.checks: dict[CheckKey, Check] = {}

    def apply(self, config: Config) -> None:
        """Start, keep or stop checks so that they match ``config`` (on start and reload)."""
        wanted = plan(config)
        for key in [k for k in self.checks if k not in wanted]:
            self.checks.pop(key).stop()
        for key, planned in wanted.items():
            check = self.checks.get(key)
            if check is not None:
                check.routes = planned.routes
                continue
            state = self.backends.state(planned.endpoint)
            check = Check(planned.endpoint, state, planned.spec, planned.routes, planned.recover_only)
            check.start()
            self.checks[key] = check
        active = sum(1 for c in self.checks.values() if not c.recover_only)
        if active:
            log.info("health checks: %d active, recovery probes for %d backends", active, len(self.checks) - active)

    def stop(self) -> None:
        for check in self.checks.values():
            check.stop()
        self.checks.clear()
