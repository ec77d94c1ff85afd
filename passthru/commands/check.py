"""``passthru check``: validate the config (and the user identifiers it names) without serving."""

from __future__ import annotations

import argparse
import sys

from passthru.bootstrap import load_with_identifiers
from passthru.cli import add_config_option
from passthru.config import ConfigErrors


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check", help="validate the config; exit 0 when it is valid")
    add_config_option(parser)
    parser.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    try:
        config, user = load_with_identifiers(args.config)
    except ConfigErrors as errors:
        print(errors, file=sys.stderr)
        return 1
    print(
        f"{config.path}: OK: {len(config.listeners)} listener(s), {len(config.routes)} route(s), "
        f"{len(user.names())} user identifier(s)"
    )
    for status in user.statuses():
        if status.last_error:
            print(f"warning: {status.source}: {status.status}: {status.last_error}", file=sys.stderr)
    return 0
