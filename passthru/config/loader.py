"""Loading a config file into a validated :class:`Config`, reporting every error at once."""

from __future__ import annotations

import grp
import pwd
from collections.abc import Collection
from pathlib import Path

from passthru.config import operating, sections
from passthru.config import routes as route_rules
from passthru.config.checker import Checker, describe
from passthru.config.document import Node, parse_document
from passthru.config.errors import ConfigError, ConfigErrors
from passthru.config.identifiers import declarative_identifiers
from passthru.config.model import Config
from passthru.identify import builtin_names

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


def load_config(path: str | Path, known_protocols: Collection[str] | None = None) -> Config:
    """Read and validate ``path``. ``known_protocols``: names routes may use (default: built-ins)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigErrors([ConfigError(path, 0, 0, f"cannot read config file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(path, 0, 0, f"config file is not UTF-8 text: {exc.reason}")]) from None
    return load_config_text(text, path, known_protocols)


def load_config_text(text: str, path: str | Path, known_protocols: Collection[str] | None = None) -> Config:
    """Validate ``text`` as if it were the content of ``path`` (editors check before writing)."""
    check = Checker(path)
    doc = parse_document(text, path)
    if doc is None:
        check.error((1, 1), "the config is empty: it needs at least 'listen' and 'routes'")
    elif not isinstance(doc, dict):
        check.error((1, 1), f"the config must be a mapping of keys (listen, routes, ...), not {describe(doc)}")
    check.raise_if_any()
    config = _build(check, Node(doc, (1, 1), ""), Path(path), known_protocols)
    check.raise_if_any()
    return config


def _build(check: Checker, root: Node, path: Path, known_protocols: Collection[str] | None) -> Config:
    check.known_keys(root, TOP_KEYS)
    for key, hint in REQUIRED_TOP.items():
        if key not in root.value:
            check.error(root.pos, f"missing required key '{key}' ({hint.strip()})")
    get = root.child
    limits = sections.limits(check, get("limits"))
    declarative, identifier_names = declarative_identifiers(check, get("identifiers"), limits.identify_bytes)
    protocols = frozenset(builtin_names() if known_protocols is None else known_protocols) | identifier_names
    routes, route_names = route_rules.routes(check, get("routes"), protocols)
    by_name = {r.name: r for r in routes}
    default_node, timeout_node = get("default"), get("on_timeout")
    default = route_rules.target(check, default_node, by_name, route_names) if default_node else None
    on_timeout = route_rules.target(check, timeout_node, by_name, route_names) if timeout_node else default
    admin, admin_access = operating.admin(check, get("admin"), path)
    return Config(
        path=path,
        listeners=sections.listeners(check, get("listen")),
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
