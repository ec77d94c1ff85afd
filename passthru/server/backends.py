"""What this process knows about each backend: up or down, and its open connections.

State is keyed by the backend's resolved address (family and socket address), not by route or
config, so it survives reloads and routes naming the same backend share it: a backend found
dead through one route is avoided by all of them, and ``least_conn`` counts every connection
this process has open to it. It is per process: with several workers each learns on its own
(as each HAProxy process did before it shared state), which costs at most one failed connect
per worker.

A backend is UP unless something holds it down. Two kinds of evidence can:

* a **failed connect** of a client's connection (refused, timed out, unreachable) marks it down
  at once; a successful connect, a background probe or an active check clears it;
* an **active check** (``health_check``) that failed ``fall`` times in a row holds it down until
  that check passes ``rise`` times in a row. A client's successful TCP connect does not override
  it: the check may test more than the handshake (a reply that must start with ``expect``).

Changes are logged once, when the verdict flips, never per check or per connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from passthru.config import Endpoint

log = logging.getLogger("passthru.backends")

BackendKey = tuple[int, tuple]


def backend_key(endpoint: Endpoint) -> BackendKey:
    return (endpoint.family, endpoint.sockaddr)


@dataclass(eq=False)
class BackendState:
    """One backend's verdict and load. Mutated only from the hub's thread (gevent)."""

    name: str
    #: Connections ``dial_any`` returned and the handler has not released yet.
    active: int = 0
    #: Why the last client connect failed, while that holds the backend down.
    connect_error: str | None = None
    #: Active checks that hold it down now (check -> reason).
    failing_checks: dict[object, str] = field(default_factory=dict)
    #: Bumped at each passive mark-down, so checks restart counting towards ``rise``.
    epoch: int = 0

    @property
    def up(self) -> bool:
        return self.connect_error is None and not self.failing_checks

    # -- passive evidence (client connections) --------------------------------------------------
    def connect_failed(self, reason: str, where: str) -> None:
        was_up = self.up
        self.connect_error = reason
        self.epoch += 1
        if was_up:
            log.warning("backend %s of %s is DOWN: %s (a client's connect failed)", self.name, where, reason)

    def connect_succeeded(self, where: str, how: str = "a client connected") -> None:
        if self.connect_error is None:
            return
        self.connect_error = None
        if self.up:
            log.info("backend %s of %s is UP (%s)", self.name, where, how)

    # -- active checks ----------------------------------------------------------------------------
    def check_failed(self, check: object, reason: str, where: str) -> None:
        was_up = self.up
        self.failing_checks[check] = reason
        if was_up:
            log.warning("backend %s of %s is DOWN: %s", self.name, where, reason)

    def check_passed(self, check: object, where: str, how: str) -> None:
        """``check`` passed ``rise`` times: it no longer holds the backend down, and neither does
        an earlier failed connect (the check connected since)."""
        was_up = self.up
        self.failing_checks.pop(check, None)
        self.connect_error = None
        if not was_up and self.up:
            log.info("backend %s of %s is UP (%s)", self.name, where, how)

    def check_removed(self, check: object, where: str) -> None:
        """The config no longer has ``check``: its verdict no longer counts."""
        was_up = self.up
        self.failing_checks.pop(check, None)
        if not was_up and self.up:
            log.info("backend %s of %s is UP (its health check was removed from the config)", self.name, where)

    # -- load -------------------------------------------------------------------------------------
    def acquire(self) -> None:
        self.active += 1

    def release(self) -> None:
        self.active = max(0, self.active - 1)


class Backends:
    """The process's backend states, created on first use."""

    def __init__(self) -> None:
        self.states: dict[BackendKey, BackendState] = {}

    def state(self, endpoint: Endpoint) -> BackendState:
        key = backend_key(endpoint)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = BackendState(str(endpoint))
        return state


#: This process's registry (a forked worker starts with an empty copy and learns on its own).
BACKENDS = Backends()
