"""``passthru route list | add | remove | move | set``: manage routes in config.yaml, keeping
its comments and layout (see ``passthru/config/edit.py``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from functools import partial

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from passthru.cli import add_config_option
from passthru.commands.editing import add_edit_options, run_edit
from passthru.config.document import parse_document
from passthru.config.edit import EditError, add_route, move_route, remove_route, set_route
from passthru.config.errors import ConfigErrors
from passthru.config.model import BALANCE_MODES, PROXY_PROTOCOL_VERSIONS
from passthru.config.render import inline


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("route", help="list, add, remove, move or change routes in the config")
    commands = parser.add_subparsers(dest="route_command", required=True, metavar="ACTION")

    show = commands.add_parser("list", help="show the routes in order (first match wins)")
    add_config_option(show)
    show.set_defaults(func=list_routes)

    add = commands.add_parser("add", help="add a route (at the end, or --before/--after another)")
    add.add_argument("name")
    _route_options(add, required_to=True)
    _placement(add, required=False)
    add.set_defaults(func=add_command)

    remove = commands.add_parser("remove", help="remove a route and the comments above it")
    remove.add_argument("name")
    add_edit_options(remove)
    remove.set_defaults(func=lambda args: run_edit(args, partial(remove_route, name=args.name), "route removed"))

    move = commands.add_parser("move", help="move a route (with its comments) before or after another")
    move.add_argument("name")
    _placement(move, required=True)
    add_edit_options(move)
    move.set_defaults(func=move_command)

    change = commands.add_parser("set", help="change a route's upstreams, match, balance or PROXY header")
    change.add_argument("name")
    _route_options(change, required_to=False)
    change.set_defaults(func=set_command)


def _route_options(parser: argparse.ArgumentParser, required_to: bool) -> None:
    parser.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="protocol=NAME, a field (sni=example.com; repeat for a list), client=CIDR, listener=NAME, "
        "or a field's test in YAML: 'sni={regex: \"(?P<t>[a-z]+)\\.example\\.com\"}', 'path={prefix: /v2/}', "
        "'sni={not: [a.example.com]}'",
    )
    parser.add_argument(
        "--to", action="append", default=[], required=required_to, metavar="HOST:PORT", help="upstream; repeat for more"
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="GLOB_OR_CIDR",
        help="for a --to with {placeholders}: a host glob (*.svc.internal) or network; repeat for more",
    )
    parser.add_argument("--balance", choices=BALANCE_MODES)
    parser.add_argument(
        "--proxy-protocol",
        choices=(*PROXY_PROTOCOL_VERSIONS, "none"),
        help="send a PROXY header upstream (none: stop sending one)",
    )
    add_edit_options(parser)


def _placement(parser: argparse.ArgumentParser, required: bool) -> None:
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--before", metavar="NAME", help="place it just before this route")
    where.add_argument("--after", metavar="NAME", help="place it just after this route")


def parse_match(items: list[str]) -> dict[str, object]:
    """``["protocol=tls", "sni=a", "sni=b"]`` -> ``{"protocol": "tls", "sni": ["a", "b"]}``.

    A value written as a YAML flow mapping (``{regex: ...}``, ``{prefix: ...}``, ``{not: ...}``)
    is that mapping; it stands alone (it cannot be repeated into a list). The config's own
    validation then checks it like any other edit.
    """
    values: dict[str, list[object]] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key or not value:
            raise EditError(f"--match {item!r}: expected KEY=VALUE, e.g. protocol=tls or sni=example.com")
        values.setdefault(key.strip(), []).append(_test(item, value.strip()))
    for key, given in values.items():
        if len(given) > 1 and (key == "protocol" or any(isinstance(v, dict) for v in given)):
            what = "protocol=" if key == "protocol" else f"a {{...}} test of {key}"
            raise EditError(f"--match {what} may be given once")
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


def _test(item: str, value: str) -> object:
    """A plain value as text; ``{...}`` read as a YAML flow mapping."""
    if not value.startswith("{"):
        return value
    try:
        parsed = YAML(typ="safe", pure=True).load(value)
    except YAMLError as exc:
        raise EditError(f"--match {item!r}: the {{...}} test is not valid YAML ({exc.problem or exc})") from None
    if not isinstance(parsed, dict):
        raise EditError(f"--match {item!r}: expected a mapping such as {{prefix: /v2/}}")
    return parsed


def _changes(args: argparse.Namespace) -> dict[str, object]:
    """The route keys the options set, in the order routes are written."""
    changes: dict[str, object] = {}
    if args.match:
        changes["match"] = parse_match(args.match)
    if args.to:  # a list: ``route set`` keeps a list a list; one address replaces a scalar as a scalar
        changes["to"] = list(args.to)
    if args.allow:
        changes["allow"] = list(args.allow)
    if args.balance:
        changes["balance"] = args.balance
    if args.proxy_protocol:
        changes["proxy_protocol"] = None if args.proxy_protocol == "none" else args.proxy_protocol
    return changes


def _refuse(message: str) -> int:
    print(f"passthru: refused: {message}", file=sys.stderr)
    return 1


def add_command(args: argparse.Namespace) -> int:
    try:
        route = {"name": args.name, **_changes(args)}
        route["to"] = route["to"][0] if len(route["to"]) == 1 else route["to"]
    except EditError as exc:
        return _refuse(str(exc))
    edit = partial(add_route, route=route, before=args.before, after=args.after)
    return run_edit(args, edit, f"route '{args.name}' added")


def move_command(args: argparse.Namespace) -> int:
    edit = partial(move_route, name=args.name, before=args.before, after=args.after)
    target = args.before or args.after
    return run_edit(args, edit, f"route '{args.name}' moved {'before' if args.before else 'after'} '{target}'")


def set_command(args: argparse.Namespace) -> int:
    try:
        changes = _changes(args)
    except EditError as exc:
        return _refuse(str(exc))
    if not changes:
        return _refuse("nothing to change: give --to, --match, --allow, --balance or --proxy-protocol")
    return run_edit(args, partial(set_route, name=args.name, changes=changes), f"route '{args.name}' changed")


def list_routes(args: argparse.Namespace) -> int:
    try:
        with open(args.config, encoding="utf-8") as source:
            doc = parse_document(source.read(), args.config)
    except (OSError, UnicodeDecodeError) as exc:
        return _refuse(f"cannot read {args.config}: {getattr(exc, 'strerror', None) or exc}")
    except ConfigErrors as errors:
        return _refuse(str(errors))
    print(route_table(doc if isinstance(doc, dict) else {}))
    return 0


def route_table(doc: Mapping) -> str:
    """Routes in order, one per line, then where unmatched and silent clients go."""
    routes = doc.get("routes")
    rows = [("NAME", "MATCH", "TO", "OPTIONS")]
    for route in routes if isinstance(routes, list) else []:
        if not isinstance(route, Mapping):
            continue
        match = route.get("match") if isinstance(route.get("match"), Mapping) else {}
        options = [f"{k}={route[k]}" for k in ("balance", "proxy_protocol") if k in route]
        rows.append(
            (str(route.get("name", "?")), _terms(match) or "(anything)", _text(route.get("to")), " ".join(options))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0], strict=True)).rstrip() for row in rows
    ]
    default = doc.get("default", "reject")
    lines += [f"default: {_text(default)}", f"on_timeout: {_text(doc.get('on_timeout', default))}"]
    return "\n".join(lines)


def _terms(match: Mapping) -> str:
    return " ".join(f"{k}={_text(v)}" for k, v in match.items())


def _text(value: object) -> str:
    if isinstance(value, Mapping):  # a field's test: {regex: ...}, {not: [...]}, as written
        return inline(value)
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
