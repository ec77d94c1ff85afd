"""What the editing sub-commands (``route ...``, ``config set``) share: options, running an
edit through the config writer, and reporting the outcome the way a command line should.

CLI glue lives here, not in ``passthru/config/``: the config layer is handed the protocols
(and their declared fields) it validates the edited text against.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from passthru.bootstrap import identifiers_dir_for, load_user_identifiers, protocols_of
from passthru.cli import add_config_option
from passthru.config.matching import Protocols
from passthru.config.writer import EditRefused, edit_config


def add_edit_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the change as a diff instead of writing it")


def known_protocols(config_path: Path) -> Protocols:
    """Built-ins plus the user identifiers in the config's ``identifiers_dir``, with their fields."""
    return protocols_of(load_user_identifiers(identifiers_dir_for(config_path)))


def run_edit(args: argparse.Namespace, edit: Callable[[str], str], done: str) -> int:
    """Apply ``edit`` to ``args.config``; print ``done`` (or the diff with ``--dry-run``).

    Exit status: 0 when applied (or shown), 1 when refused (the file is then untouched).
    """
    path = Path(args.config)
    try:
        outcome = edit_config(path, edit, known_protocols=known_protocols(path), dry_run=args.dry_run)
    except EditRefused as refused:
        print(f"passthru: refused: {refused}", file=sys.stderr)
        return 1
    if not outcome.changed:
        print(f"{path}: no change")
    elif args.dry_run:
        sys.stdout.write(outcome.diff())
    else:
        print(f"{path}: {done}")
    return 0
