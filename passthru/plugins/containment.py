"""Containment: the guard the engine calls for every identifier, and what happens when one fails.

Policy (README, "User identifiers: containment"):

* Trusted identifiers (``Identifier.trusted``: built-ins and the config's ``identifiers:``
  rules, set by whoever builds them) are called directly: no overhead, no time limit, and they
  never count against a connection's budget.
* Anything else runs under a per-call wall-clock budget (:class:`~passthru.plugins.timelimit.TimeLimit`,
  50 ms by default) and its verdict is validated (``check_verdict``). A timeout, an exception or a
  bad verdict raises :class:`IdentifierFailed` (``path:line: …``); the engine turns that into
  "no match" for this connection and records it in ``Identification.errors``.
* ``failure_limit`` consecutive failures (5 by default) of the serving version of a file disable
  it until the file changes: the owner (``store.py``) takes it out of the snapshot and logs why.
  A success resets the count. Older versions still running on old connections are contained
  the same way but do not count.
* Per connection, :class:`ConnectionGuard` stops consulting user identifiers once they have used
  ``connection_budget`` seconds in total (so one connection is delayed by at most that plus one
  call's budget); trusted identifiers still run.

While a user identifier runs, the whole process waits (gevent is cooperative): the budget is the
longest any other connection can be delayed by one call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

from passthru import metrics
from passthru.identify.base import Fields, Identifier, InvalidVerdict, check_verdict
from passthru.plugins.errors import (
    BudgetExhausted,
    IdentifierFailed,
    IdentifierTimeout,
    describe,
    user_line,
)
from passthru.plugins.timelimit import TIME_LIMIT, Overrun


@dataclass
class Health:
    """Consecutive failures of one serving version."""

    failures: int = 0
    disabled: bool = False


class Containment:
    """Calls user identifiers under a time budget and counts failures of the serving versions."""

    def __init__(
        self,
        budget: float,
        failure_limit: int,
        on_disable: Callable[[Identifier, IdentifierFailed], None],
        log: logging.Logger,
    ) -> None:
        self.budget = budget
        self.failure_limit = failure_limit
        self.limit = TIME_LIMIT
        self._on_disable = on_disable
        self._log = log
        self._health: dict[int, Health] = {}

    def watch(self, identifier: Identifier) -> None:
        """Start counting failures for a version that was just swapped in."""
        self._health[id(identifier)] = Health()

    def release(self, identifier: Identifier) -> None:
        """Stop counting for a version that no longer serves (it may still run on old connections)."""
        self._health.pop(id(identifier), None)

    def call(self, identifier: Identifier, data: bytes, budget: float | None = None) -> Fields | int | None:
        """The verdict of ``identifier`` on ``data``; raises :class:`IdentifierFailed` on any failure."""
        if identifier.trusted:
            return identifier.identify(data)
        health = self._health.get(id(identifier))
        if health is not None and health.disabled:
            return None
        try:
            verdict = self.run(identifier, data, self.budget if budget is None else budget)
        except IdentifierFailed as error:
            if health is not None:
                self._count_failure(identifier, health, error)
            raise
        if health is not None:
            health.failures = 0
        return verdict

    def run(self, identifier: Identifier, data: bytes, budget: float) -> Fields | int | None:
        """One contained call, with no bookkeeping (samples use this directly)."""
        path = identifier.source
        limited = self.limit.can_interrupt()
        started = 0.0 if limited else perf_counter()  # a limited call is stopped at the budget
        try:
            raw = self.limit.call(identifier.identify, data, budget)
            verdict = check_verdict(identifier.name, data, raw)
        except InvalidVerdict as exc:  # raised by us, not the file: point at its identify()
            code = getattr(identifier.identify, "__code__", None)
            raise IdentifierFailed(path, code.co_firstlineno if code else None, str(exc)) from None
        except Overrun as exc:
            raise self._timeout(path, user_line(exc, path), budget) from None
        except (Exception, SystemExit) as exc:
            raise IdentifierFailed(path, user_line(exc, path), describe(exc)) from None
        if not limited:
            elapsed = perf_counter() - started
            if elapsed > budget:
                raise self._timeout(path, None, budget, elapsed)
        return verdict

    @staticmethod
    def _timeout(path: str, line: int | None, budget: float, elapsed: float | None = None) -> IdentifierTimeout:
        took = f" (took {elapsed * 1000:.0f} ms)" if elapsed is not None else ""
        where = f", interrupted at line {line}" if line else ""
        return IdentifierTimeout(path, line, f"identify() ran longer than {budget * 1000:g} ms{took}{where}")

    def _count_failure(self, identifier: Identifier, health: Health, error: IdentifierFailed) -> None:
        health.failures += 1
        self._log.warning("%s (failure %d of %d in a row)", error, health.failures, self.failure_limit)
        metrics.identifier_error(identifier.name, "timeout" if isinstance(error, IdentifierTimeout) else "runtime")
        if health.failures >= self.failure_limit and not health.disabled:
            health.disabled = True
            self._on_disable(identifier, error)


class ConnectionGuard:
    """The guard for one connection: user identifiers share ``total`` seconds across all calls.

    Checked before each call, so the worst case for one connection is ``total`` plus one call's
    budget. Once spent, user identifiers answer "no match" (reported as :class:`BudgetExhausted`)
    and the trusted identifiers (built-ins, config rules) decide alone.
    """

    __slots__ = ("containment", "spent", "total")

    def __init__(self, containment: Containment, total: float) -> None:
        self.containment = containment
        self.total = total
        self.spent = 0.0

    def __call__(self, identifier: Identifier, data: bytes) -> Fields | int | None:
        if identifier.trusted:
            return identifier.identify(data)
        if self.spent >= self.total:
            raise BudgetExhausted(
                identifier.source,
                None,
                f"not consulted: user identifiers already used {self.spent * 1000:.0f} ms on this connection",
            )
        started = perf_counter()
        try:
            return self.containment.call(identifier, data)
        finally:
            self.spent += perf_counter() - started
