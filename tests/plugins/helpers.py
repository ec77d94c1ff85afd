"""Helpers for the user-identifier tests: identifier files, versions, waiting in the hub."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable
from pathlib import Path

import gevent

from passthru.plugins import UserIdentifiers

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "identifiers"


def source_of(version: object, name: str = "demo", extra: str = "") -> str:
    """A valid identifier file whose matches report ``{"version": version}``."""
    return textwrap.dedent(
        f'''
        NAME = "{name}"

        def identify(data: bytes):
            if len(data) < 4:
                return 4 if b"DEMO".startswith(data) else None
            if not data.startswith(b"DEMO"):
                return None
            return {{"version": {version!r}}}

        SAMPLES = {{"match": [b"DEMO1"], "no_match": [b"GET / HTTP/1.1\\r\\n"]}}
        '''
    ) + textwrap.dedent(extra)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def wait_until(predicate: Callable[[], object], timeout: float = 3.0, step: float = 0.01) -> float:
    """Let the hub run until ``predicate()`` is true; returns the seconds it took."""
    deadline = gevent.get_hub().loop.now() + timeout
    start = gevent.get_hub().loop.now()
    while not predicate():
        if gevent.get_hub().loop.now() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        gevent.sleep(step)
        gevent.get_hub().loop.update_now()
    return gevent.get_hub().loop.now() - start


def version_of(users: UserIdentifiers, name: str = "demo") -> object:
    """What the serving version of ``name`` reports for a match (None when it does not serve)."""
    for identifier in users.current():
        if identifier.name == name:
            return identifier.identify(b"DEMO")["version"]
    return None
