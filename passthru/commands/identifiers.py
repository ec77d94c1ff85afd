"""``passthru identifiers list | test``: user identifier files, checked without a server.

``list`` loads the config's ``identifiers_dir`` as the server would at start-up and shows each
file's name, status (``active``/``rejected``; ``disabled`` only happens in a running server),
source and last error. ``test FILE`` loads one file, runs its ``SAMPLES`` exactly as the
server does before a version may serve, and answers for bytes given with ``--hex`` and for every
sample in a ``--captures`` directory (what ``capture:`` wrote), with an ``N of M samples match`` line.

Exit codes: ``list`` 0; ``test`` 0 when every sample passes (and no ``--hex`` input or capture
made it fail; matching no capture is not a failure), 1 otherwise, 2 when the file does not load,
the captures directory cannot be read, or an argument is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from passthru.bootstrap import identifiers_dir_for
from passthru.cli import add_config_option
from passthru.identify import builtin_names
from passthru.identify.base import Identifier
from passthru.plugins import IdentifierFailed, IdentifierStatus, LoadError, UserIdentifiers
from passthru.plugins.containment import Containment
from passthru.plugins.loader import load, read_source
from passthru.plugins.samples import SampleResult, run_samples, sample_text

DEFAULT_BUDGET = 0.05


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("identifiers", help="list and test user identifier files")
    commands = parser.add_subparsers(dest="identifiers_command", required=True, metavar="SUBCOMMAND")

    listing = commands.add_parser("list", help="name, status, source file and last error of each file")
    add_config_option(listing)
    listing.add_argument("--dir", type=Path, help="list this directory instead of the config's identifiers_dir")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    listing.set_defaults(func=list_command)

    testing = commands.add_parser("test", help="run a file's SAMPLES and answer for given bytes")
    testing.add_argument("file", type=Path, help="an identifier file (.py)")
    testing.add_argument(
        "--hex", action="append", default=[], metavar="HEX", help="bytes to identify (repeatable; spaces ignored)"
    )
    testing.add_argument(
        "--captures",
        type=Path,
        metavar="DIR",
        help="also run it against every sample in DIR (capture: in the config) and count the matches",
    )
    testing.add_argument(
        "--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS", help="time per call (default %(default)s)"
    )
    testing.set_defaults(func=file_test_command)


# -- list -----------------------------------------------------------------------------------------


def list_command(args: argparse.Namespace) -> int:
    directory = args.dir
    if directory is None:
        config = Path(args.config)
        if not config.is_file():
            print(f"{config}: cannot read config file (use -c PATH, or --dir DIR)", file=sys.stderr)
            return 2
        directory = identifiers_dir_for(config)
    users = UserIdentifiers(directory, log=_quiet_logger())
    users.load_all()
    statuses = users.statuses()
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    elif not statuses:
        print(f"no identifier files in {directory}")
    else:
        print(render_table(statuses))
    return 0


def render_table(statuses: list[IdentifierStatus]) -> str:
    rows = [("NAME", "STATUS", "SOURCE", "LAST ERROR")]
    for s in statuses:
        state = s.status if s.serving or s.status == "active" else f"{s.status} (not serving)"
        rows.append((s.name, state, s.source, s.last_error or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    )


def _quiet_logger() -> logging.Logger:
    """Load errors are shown in the table, not logged a second time."""
    log = logging.getLogger("passthru.plugins.cli")
    log.propagate = False
    log.addHandler(logging.NullHandler())
    return log


# -- test -----------------------------------------------------------------------------------------


def file_test_command(args: argparse.Namespace) -> int:
    try:
        inputs = [bytes.fromhex("".join(text.split())) for text in args.hex]
    except ValueError as exc:
        print(f"--hex: not hexadecimal: {exc}", file=sys.stderr)
        return 2
    containment = Containment(args.budget, failure_limit=0, on_disable=lambda *_: None, log=_quiet_logger())
    try:
        identifier = load(read_source(args.file), containment.limit).identifier
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except LoadError as exc:
        print(f"{exc}\n{args.file}: does not load", file=sys.stderr)
        return 2

    def call(ident: Identifier, data: bytes) -> Any:
        return containment.run(ident, data, args.budget)

    print(f"{args.file}: identifier {identifier.name!r}{_builtin_note(identifier.name)}")
    results = run_samples(identifier, call)
    for result in results:
        print(_sample_line(identifier, result))
    failed = sum(1 for r in results if not r.ok)
    if results:
        print(f"{len(results)} samples: {len(results) - failed} passed, {failed} failed")
    else:
        print("no SAMPLES (add some: they are checked before each version serves)")
    errors = 0
    for data in inputs:
        answer = answer_for(identifier, data, call)
        errors += answer["result"] == "error"
        print(json.dumps(answer, default=str))
    if args.captures is not None:
        try:
            errors += test_captures(identifier, args.captures, call)
        except OSError as exc:
            print(f"{args.captures}: cannot read captures: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 1 if failed or errors else 0


def test_captures(identifier: Identifier, directory: Path, call: Any) -> int:
    """One line per captured sample (oldest first) and the ``N of M samples match`` summary;
    returns how many samples made the identifier fail."""
    samples = sorted(p for p in directory.iterdir() if p.suffix == ".bin" and not p.name.startswith("."))
    matched = errors = 0
    for path in samples:
        data = path.read_bytes()
        answer = answer_for(identifier, data, call)
        result, verdict = answer["result"], answer.get("verdict")
        if result == "match":
            matched += 1
            shown = f"match     {json.dumps(verdict, default=str, sort_keys=True)}"
        elif result == "need_more":
            shown = f"no match  (wants {verdict} bytes; the sample has {len(data)})"
        elif result == "error":
            errors += 1
            shown = f"ERROR     {answer['error']}"
        else:
            shown = "no match"
        print(f"  {path.name}  {shown}{_capture_note(path)}")
    print(f"{matched} of {len(samples)} samples match ({directory})")
    return errors


def _capture_note(path: Path) -> str:
    """``  [unmatched from 203.0.113.9:51234]`` from the sample's ``.json``, when it has one."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return ""
    return f"  [{meta.get('reason', '?')} from {meta.get('client', '?')}]" if isinstance(meta, dict) else ""


def answer_for(identifier: Identifier, data: bytes, call: Any) -> dict[str, Any]:
    """The verdict for one input, as one JSON-able object."""
    answer: dict[str, Any] = {"hex": data.hex()}
    try:
        verdict = call(identifier, data)
    except IdentifierFailed as exc:
        return {**answer, "result": "error", "verdict": None, "error": str(exc)}
    result = "match" if isinstance(verdict, dict) else "no_match" if verdict is None else "need_more"
    return {**answer, "result": result, "verdict": verdict}


def _sample_line(identifier: Identifier, result: SampleResult) -> str:
    head = f"  {'PASS' if result.ok else 'FAIL'}  {result.label:<12} {sample_text(result.data)}"
    if result.ok:
        return f"{head}  -> {json.dumps(result.verdict, default=str)}"
    where = f"{identifier.source}:{result.line}: " if result.line else ""
    return f"{head}  {where}{result.problem}"


def _builtin_note(name: str) -> str:
    return f" (replaces the built-in {name!r})" if name in builtin_names() else ""
