"""Builder for upstream templates: ``to: "{tenant}.svc.internal:8443"`` with ``allow:``.

A placeholder takes a named group of the route's regexes or a field its protocol reports. The
host part may hold placeholders and host-name characters only; the port is a fixed number.
``allow`` lists host globs (``*.svc.internal``: any name below; ``db.internal``: that name) and
networks (``10.20.0.0/16``); a template without ``allow`` is refused, and so is ``allow``
without a template. What the server does with them at connection time is in
``passthru/server/targets.py``.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from passthru.config.addresses import parse_network, split_host_port
from passthru.config.checker import Checker, closest, describe, one_of_text
from passthru.config.document import Node
from passthru.config.model import IPNetwork, UpstreamTemplate

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PLACEHOLDER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LITERAL_HOST = re.compile(r"[A-Za-z0-9.-]*")
HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
ALLOW_HINT = 'host globs and networks, e.g. allow: ["*.svc.internal", "10.20.0.0/16"]'


def is_template(node: Node) -> bool:
    """A ``to`` (or any of its items) with a ``{`` or ``}`` in it."""
    return any(isinstance(item.value, str) and ("{" in item.value or "}" in item.value) for item in node.as_list())


def upstream_template(
    check: Checker, to: Node, allow: Node | None, groups: Collection[str], reported: Collection[str] | None
) -> UpstreamTemplate | None:
    """The template in ``to`` and its ``allow`` list. ``groups``: the route's regex group names;
    ``reported``: the fields its protocol declares (None: any name may be reported)."""
    if to.is_sequence:
        check.error(to.pos, f"{to.where}: a to with {{placeholders}} takes one address, not a list")
        return None
    text = str(to.value)
    try:
        host, port = split_host_port(text)
    except ValueError as exc:
        check.error(to.pos, f"{to.where}: {exc}")
        return None
    names = placeholders(check, to, host, groups, reported)
    networks_globs = allow_list(check, allow, to) if allow is not None else None
    if allow is None:
        check.error(to.pos, f"{to.where} has {{placeholders}}, so the route needs allow: {ALLOW_HINT}")
    if names is None or networks_globs is None:
        return None
    networks, globs = networks_globs
    return UpstreamTemplate(text, host, port, names, globs, networks)


def placeholders(
    check: Checker, to: Node, host: str, groups: Collection[str], reported: Collection[str] | None
) -> tuple[str, ...] | None:
    """The placeholder names in ``host``; each must be known, the rest plain host characters."""
    names = PLACEHOLDER.findall(host)
    literal = PLACEHOLDER.sub("", host)
    if not names or not LITERAL_HOST.fullmatch(literal):
        check.error(
            to.pos,
            f"{to.where}: the host part {host!r} may hold {{name}} placeholders, letters, digits, '.' and '-' "
            "only (the port is a fixed number)",
        )
        return None
    known = sorted({*groups, *(reported or ())})
    for name in names:
        if not PLACEHOLDER_NAME.fullmatch(name):
            check.error(to.pos, f"{to.where}: {{{name}}} is not a placeholder name (letters, digits, '_')")
            return None
        if name not in groups and reported is not None and name not in reported:
            guess = closest(name, known)
            suggestion = f"; did you mean '{guess}'?" if guess else ""
            offered = one_of_text(known) if known else "none: add a regex with (?P<name>...) to match"
            check.error(
                to.pos, f"{to.where}: {{{name}}} is neither a regex group nor a field (known: {offered}){suggestion}"
            )
            return None
    return tuple(dict.fromkeys(names))


def allow_list(check: Checker, node: Node, to: Node) -> tuple[tuple[IPNetwork, ...], tuple[str, ...]] | None:
    """``(networks, host globs)`` from ``allow``."""
    items = node.as_list()
    if not items:
        check.error(node.pos, f"{node.where} is empty, which allows nothing: give {ALLOW_HINT}")
        return None
    networks: list[IPNetwork] = []
    globs: list[str] = []
    ok = True
    for item in items:
        value = item.value
        if not isinstance(value, str) or not value:
            check.error(item.pos, f"{item.where} must be a host glob or a network, not {describe(value)}")
            ok = False
            continue
        if "/" in value or ":" in value or value.replace(".", "").isdigit():  # written as an address
            network = check.converted(item, parse_network)
            ok = ok and network is not None
            networks += [network] if network is not None else []
            continue
        glob = value.lower()
        name = glob[2:] if glob.startswith("*.") else glob
        if not is_host_name(name):
            check.error(
                item.pos,
                f"{item.where}: {value!r} is neither a network (10.20.0.0/16) nor a host name or glob (*.svc.internal)",
            )
            ok = False
            continue
        globs.append(glob)
    return (tuple(networks), tuple(globs)) if ok else None


def is_host_name(name: str) -> bool:
    """A lower-case DNS name: dot-separated labels of letters, digits and inner '-', at most
    253 characters, the last label not all digits (so ``127.1`` is never a name)."""
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    return all(HOST_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


__all__ = ["is_host_name", "is_template", "upstream_template"]
