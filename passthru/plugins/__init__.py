"""User identifiers: plain Python files in ``identifiers/``, loaded, validated, hot-swapped, contained.

One module per job:

* ``loader``      — one file to an ``Identifier`` (read, compile, execute in isolation, validate);
* ``strictmodes`` — refuse files any local user could change, warn about group-writable ones;
* ``samples``     — run a file's ``SAMPLES`` (the gate before a version may serve);
* ``timelimit``   — the ``SIGALRM`` deadline that interrupts a runaway call;
* ``containment`` — the engine's guard: budgets, failure counting, disabling;
* ``store``       — :class:`UserIdentifiers`: which version of each file serves, and the swap.

The server creates one :class:`UserIdentifiers`, calls ``load_all()`` then ``start_watching()``
in the hub thread, and for each connection passes ``current()`` (or ``combined()``, user
identifiers plus the built-ins they do not replace) and ``connection_guard()`` (or ``guard``) to
the engine.
"""

from passthru.plugins.containment import ConnectionGuard
from passthru.plugins.errors import BudgetExhausted, IdentifierFailed, IdentifierTimeout, LoadError
from passthru.plugins.store import ACTIVE, DISABLED, REJECTED, IdentifierStatus, UserIdentifiers

__all__ = [
    "ACTIVE",
    "DISABLED",
    "REJECTED",
    "BudgetExhausted",
    "ConnectionGuard",
    "IdentifierFailed",
    "IdentifierStatus",
    "IdentifierTimeout",
    "LoadError",
    "UserIdentifiers",
]
