"""The ``passthru`` command line: one sub-command module per job under ``passthru/commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Sub-command modules. Each defines ``register(subparsers)`` which adds its parser(s) and sets
#: ``func`` (called with the parsed namespace, returning the exit code).
COMMAND_MODULES = (
    "passthru.commands.run",
    "passthru.commands.check",
    "passthru.commands.identify",
    "passthru.commands.route",
    "passthru.commands.config_cmd",
    "passthru.commands.identifiers",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="passthru", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Every sub-command that reads a config takes ``-c PATH`` (default ``./config.yaml``)."""
    parser.add_argument(
        "-c", "--config", default="config.yaml", metavar="PATH", help="config file (default: %(default)s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
