"""``passthru status``: ask the running instance (its ``admin:`` endpoint) how it is doing.

Prints a compact table (connections, routes with their backends, identifiers, last reload,
workers), or ``/status.json`` itself with ``--json``. Exit codes: 0 answered; 1 nothing answers
at the admin address (not running, or still starting) or it refused us; 2 the config cannot be
read or has no ``admin:``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from passthru.cli import add_config_option
from passthru.config import ConfigError, ConfigErrors, Endpoint, operating
from passthru.config.checker import Checker
from passthru.config.document import Node, parse_document
from passthru.config.operating import AdminAccess

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}
TIMEOUT = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show what the running Passthru is doing (asks its admin address)",
        description="Ask the running Passthru, at the config's admin address, for its routes, backends, "
        "identifiers, last reload and workers.",
    )
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print /status.json as it is")
    parser.set_defaults(func=status_command)


def status_command(args: argparse.Namespace) -> int:
    try:
        admin, access = admin_setting(Path(args.config))
    except ConfigErrors as errors:
        print(errors, file=sys.stderr)
        return 2
    if admin is None:
        print(
            f"{args.config}: admin: is off, so there is nothing to ask; add e.g. 'admin: 127.0.0.1:9901' "
            "and restart Passthru",
            file=sys.stderr,
        )
        return 2
    url = status_url(admin)
    try:
        document = fetch(url, access)
    except urllib.error.HTTPError as error:
        print(f"{url}: refused with {error.code} {error.reason}: {_first_line(error)}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"Passthru is not answering at {url} ({reason}): is it running with {args.config}?", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2) if args.json else render(document))
    return 0


def admin_setting(path: Path) -> tuple[Endpoint | None, AdminAccess]:
    """Only ``admin:`` of the config (the rest may name identifiers only the server loads)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(path, 0, 0, f"cannot read config file: {exc}")]) from None
    check = Checker(path)
    doc = parse_document(text, path)
    if not isinstance(doc, dict):
        check.error((1, 1), "the config must be a mapping of keys (listen, routes, admin, ...)")
        check.raise_if_any()
    admin, access = operating.admin(check, Node(doc, (1, 1), "").child("admin"), path)
    check.raise_if_any()
    return admin, access


def status_url(endpoint: Endpoint) -> str:
    host = WILDCARDS.get(endpoint.host, endpoint.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{endpoint.port}/status.json"


def fetch(url: str, access: AdminAccess | None) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    if access is not None and access.token_file is not None:
        headers["Authorization"] = "Bearer " + access.token_file.read_text(encoding="utf-8").strip()
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy
    with opener.open(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def _first_line(error: urllib.error.HTTPError) -> str:
    try:
        return error.read().decode("utf-8", "replace").strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


# -- the table -------------------------------------------------------------------------------------


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def ago(seconds: float) -> str:
    """``2d 3h``, ``3h 5m``, ``5m 2s`` or ``12s``."""
    s = max(0, int(seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return f"{d}d {h}h" if d else f"{h}h {m}m" if h else f"{m}m {s % 60}s" if m else f"{s}s"


def render(s: dict[str, Any]) -> str:
    now = s.get("generated") or time.time()
    c = s["connections"]
    workers = s["workers"]
    lines = [
        f"Passthru {s['version']}: {len(workers)} worker{'s' if len(workers) != 1 else ''}; connections: "
        f"{c['open']} open, {c['identifying']} identifying, {c['per_second']:.1f}/s, {c['total']} in total; "
        f"{s['unmatched']} matched no route",
    ]
    reload = s["reload"]
    if reload["at"] is None:
        lines.append("Last reload: none yet")
    else:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(reload["at"]))
        lines.append(f"Last reload: {stamp}, " + ("ok" if reload["ok"] else "REJECTED (the previous config serves):"))
        if not reload["ok"] and reload["error"]:
            lines.extend("  " + line for line in reload["error"].splitlines())
    rows = [["ROUTE", "MATCH", "OPEN", "TOTAL", "BACKEND", "STATE", "B.OPEN", "FAILURES 5m/all"]]
    for route in s["routes"]:
        match = "; ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in route["match"].items())
        first = [route["name"], match or "anything", str(route["open"]), str(route["total"])]
        for i, b in enumerate(route["backends"] or [None]):
            head = first if i == 0 else ["", "", "", ""]
            if b is None:
                rows.append([*head, "-", "-", "-", "-"])
                continue
            state = "up" if b["up"] else f"DOWN ({b['why']})" if b.get("why") else "DOWN"
            rows.append([*head, b["address"], state, str(b["open"]), f"{b['recent_failures']}/{b['failures']}"])
    fallbacks = f"default: {s.get('default') or 'reject'}; on_timeout: {s.get('on_timeout') or 'reject'}"
    lines += ["", table(rows), fallbacks]
    own = [i for i in s["identifiers"] if i["source"] != "built-in"]
    builtins = [i["name"] for i in s["identifiers"] if i["source"] == "built-in"]
    if own:
        rows = [["IDENTIFIER", "SOURCE", "VERSION", "STATE", "ERRORS", "LAST ERROR"]]
        for i in own:
            state = "disabled" if i["disabled"] else i["status"]
            error = (i.get("error") or "-").splitlines()[0]
            source = i.get("file") or i["source"]
            rows.append([i["name"], source, i.get("version") or "-", state, str(i["errors"]), error])
        lines += ["", table(rows)]
    lines.append(f"built-in identifiers: {len(builtins)}")
    rows = [["WORKER", "PID", "UP"]]
    rows += [[str(w["worker"]), str(w["pid"]), ago(now - (w["started"] or now))] for w in workers]
    lines += ["", table(rows)]
    return "\n".join(lines)
