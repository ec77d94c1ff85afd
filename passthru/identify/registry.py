"""The list of built-in identifiers. Adding a protocol family means adding its module here."""

from __future__ import annotations

from passthru.identify.base import Identifier
from passthru.identify.http import HTTP
from passthru.identify.ssh import SSH
from passthru.identify.tls import TLS

BUILTINS: tuple[Identifier, ...] = (TLS, HTTP, SSH)


def builtin_names() -> frozenset[str]:
    return frozenset(i.name for i in BUILTINS)
