"""Loading a config file into a validated :class:`Config`, reporting every error at once.

Loading happens in two steps so a file is read and parsed once: :func:`read_config` gives a
:class:`ConfigSource`, which already knows ``identifiers_dir`` (the user identifiers there must
be loaded before routes naming them can be checked), and ``validate`` builds the :class:`Config`
against the protocols it is handed: each protocol's declared fields (or None for "any").
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passthru.config import operating, sections
from passthru.config import routes as route_rules
from passthru.config.checker import Checker, describe
from passthru.config.document import Node, parse_document
from passthru.config.errors import ConfigError, ConfigErrors
from passthru.config.identifiers import declarative_identifiers, declared_fields
from passthru.config.matching import Protocols
from passthru.config.model import Config
from passthru.identify import BUILTINS

#: What a caller may hand in: each protocol's declared fields, or just names (any field goes).
KnownProtocols = Protocols | Collection[str]

TOP_KEYS = (
    "listen",
    "timeouts",
    "limits",
    "routes",
    "on_timeout",
    "default",
    "identifiers_dir",
    "identifiers",
    "workers",
    "admin",
    "log_format",
    "user",
    "group",
    "capture",
)
REQUIRED_TOP = {"listen": "e.g. listen: 0.0.0.0:8443", "routes": "a list of routes, e.g. routes: [] "}


@dataclass(frozen=True)
class ConfigSource:
    """A config file read and parsed once; ``errors`` holds why it could not be parsed."""

    path: Path
    document: Any
    errors: ConfigErrors | None = None

    @classmethod
    def parse(cls, text: str, path: str | Path) -> ConfigSource:
        try:
            return cls(Path(path), parse_document(text, path))
        except ConfigErrors as errors:
            return cls(Path(path), None, errors)

    @property
    def identifiers_dir(self) -> Path:
        """Where user identifiers live: the one place that applies the default, also for a
        file that does not parse (its errors come from ``validate``)."""
        doc = self.document
        node = Node(doc, (1, 1), "").child("identifiers_dir") if isinstance(doc, dict) else None
        return sections.identifiers_dir(Checker(self.path), node, self.path)

    def validate(self, known_protocols: KnownProtocols | None = None) -> Config:
        """The validated config; raises ConfigErrors listing every problem."""
        if self.errors is not None:
            raise self.errors
        check = Checker(self.path)
        doc = self.document
        if doc is None:
            check.error((1, 1), "the config is empty: it needs at least 'listen' and 'routes'")
        elif not isinstance(doc, dict):
            check.error((1, 1), f"the config must be a mapping of keys (listen, routes, ...), not {describe(doc)}")
        check.raise_if_any()
        config = _build(check, Node(doc, (1, 1), ""), self.path, protocol_fields(known_protocols))
        check.raise_if_any()
        return config


def read_config(path: str | Path) -> ConfigSource:
    """Read and parse ``path`` (an unreadable file raises ConfigErrors at once)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigErrors([ConfigError(path, 0, 0, f"cannot read config file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(path, 0, 0, f"config file is not UTF-8 text: {exc.reason}")]) from None
    return ConfigSource.parse(text, path)


def protocol_fields(known: KnownProtocols | None) -> Protocols:
    """Name -> declared fields; the built-ins' declarations when nothing is handed in."""
    if known is None:
        return {i.name: i.fields for i in BUILTINS}
    if isinstance(known, Mapping):
        return known
    builtins = {i.name: i.fields for i in BUILTINS}
    return {name: builtins.get(name) for name in known}


def load_config(path: str | Path, known_protocols: KnownProtocols | None = None) -> Config:
    """Read and validate ``path``. ``known_protocols``: what routes may use (default: built-ins)."""
    return read_config(path).validate(known_protocols)


def load_config_text(text: str, path: str | Path, known_protocols: KnownProtocols | None = None) -> Config:
    """Validate ``text`` as if it were the content of ``path`` (editors check before writing)."""
    return ConfigSource.parse(text, path).validate(known_protocols)


def _build(check: Checker, root: Node, path: Path, known_protocols: Protocols) -> Config:
    check.known_keys(root, TOP_KEYS)
    for key, hint in REQUIRED_TOP.items():
        if key not in root.value:
            check.error(root.pos, f"missing required key '{key}' ({hint.strip()})")
    get = root.child
    limits = sections.limits(check, get("limits"))
    declarative, identifier_names = declarative_identifiers(check, get("identifiers"), limits.identify_bytes)
    rules = {d.name: declared_fields(d) for d in declarative}
    protocols = {**known_protocols, **dict.fromkeys(identifier_names), **rules}
    listen_node = get("listen")
    listeners = sections.listeners(check, listen_node)
    listener_names = sections.listener_names(listen_node)
    routes, route_names = route_rules.routes(check, get("routes"), protocols, listener_names)
    by_name = {r.name: r for r in routes}
    default_node, timeout_node = get("default"), get("on_timeout")
    default = route_rules.target(check, default_node, by_name, route_names) if default_node else None
    on_timeout = route_rules.target(check, timeout_node, by_name, route_names) if timeout_node else default
    admin, admin_access = operating.admin(check, get("admin"), path)
    return Config(
        path=path,
        listeners=listeners,
        timeouts=sections.timeouts(check, get("timeouts")),
        limits=limits,
        routes=routes,
        default=default,
        on_timeout=on_timeout,
        identifiers_dir=sections.identifiers_dir(check, get("identifiers_dir"), path),
        workers=sections.workers(check, get("workers")),
        admin=admin,
        declarative=declarative,
        log_format=sections.log_format(check, get("log_format")),
        user=sections.account(check, get("user"), pwd.getpwnam, "user"),
        group=sections.account(check, get("group"), grp.getgrnam, "group"),
        admin_access=admin_access,
        capture=operating.capture(check, get("capture"), path),
    )
