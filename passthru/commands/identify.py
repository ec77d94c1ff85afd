"""``passthru identify``: classify captured first bytes, as the server would (DESIGN.md contract).

One JSON object per sample on one line: ``protocol``, ``fields``, ``bytes_needed``; with
``-c`` also the ``route`` the config would choose; with ``--explain`` every identifier's answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from passthru.bootstrap import load_with_identifiers
from passthru.config import ConfigErrors
from passthru.identify import BUILTINS, Identification, Identifier
from passthru.identify.engine import Guard, call_plain


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("identify", help="identify the protocol of captured first bytes")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--hex", help="the bytes as hex (whitespace ignored)")
    source.add_argument("--file", type=Path, help="a file holding the raw bytes")
    source.add_argument("--batch", action="store_true", help="one hex string per stdin line, one JSON line each")
    parser.add_argument("-c", "--config", metavar="PATH", help="also load this config's identifiers and routes")
    parser.add_argument("--explain", action="store_true", help="include every identifier's answer")
    parser.set_defaults(func=identify_command)


class Classifier:
    """The identifiers (and optionally the routes) of one config, applied to samples."""

    def __init__(self, config_path: str | None) -> None:
        self.runtime = None
        self.identifiers: tuple[Identifier, ...] = BUILTINS
        self.guard: Guard = call_plain
        if config_path is not None:
            from passthru.server.runtime import Runtime, connection_guard

            config, user = load_with_identifiers(config_path)
            self.runtime = Runtime.build(config)
            self.identifiers = self.runtime.identifiers(user)
            self.guard = connection_guard(user)

    def classify(self, data: bytes, explain: bool) -> dict[str, Any]:
        identification = Identification(self.identifiers, guard=self.guard)
        decision = identification.feed(data)
        result: dict[str, Any] = {
            "protocol": decision.protocol,
            "fields": decision.fields,
            "bytes_needed": decision.bytes_needed,
        }
        if self.runtime is not None:
            route = None
            if decision.final:
                route = self.runtime.router.route(decision.protocol, decision.fields) or self.runtime.config.default
            result["route"] = route.name if route is not None else None
        if explain:
            result["explain"] = [explain_answer(a) for a in identification.answers]
        return result


def explain_answer(answer: Any) -> dict[str, Any]:
    verdict = answer.verdict
    entry: dict[str, Any] = {"identifier": answer.identifier.name, "source": answer.identifier.source}
    if isinstance(verdict, dict):
        entry.update(answer="match", fields=verdict)
    elif verdict is None:
        entry["answer"] = "no match"
    else:
        entry.update(answer="need more", bytes_needed=verdict)
    if answer.error:
        entry["error"] = answer.error
    return entry


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result, default=str) + "\n")


def identify_command(args: argparse.Namespace) -> int:
    try:
        classifier = Classifier(args.config)
    except ConfigErrors as errors:
        print(errors, file=sys.stderr)
        return 2
    if args.batch:
        for line in sys.stdin:
            try:
                data = bytes.fromhex(line.strip())
            except ValueError as exc:
                emit({"error": f"not hex: {exc}"})
                continue
            emit(classifier.classify(data, args.explain))
        sys.stdout.flush()
        return 0
    try:
        if args.hex is not None:
            data = bytes.fromhex(args.hex)
        elif args.file is not None:
            data = args.file.read_bytes()
        else:
            data = sys.stdin.buffer.read()
    except ValueError as exc:
        print(f"passthru identify: --hex is not hex: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"passthru identify: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    emit(classifier.classify(data, args.explain))
    return 0
