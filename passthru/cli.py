"""The ``passthru`` command line: one sub-command module per job under ``passthru/commands``."""
# The module docstring is for developers; ``passthru --help`` shows DESCRIPTION and EPILOG.

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from passthru import __version__

#: Sub-command modules. Each defines ``register(subparsers)`` which adds its parser(s) and sets
#: ``func`` (called with the parsed namespace, returning the exit code).
COMMAND_MODULES = (
    "passthru.commands.run",
    "passthru.commands.check",
    "passthru.commands.identify",
    "passthru.commands.route",
    "passthru.commands.config_cmd",
    "passthru.commands.identifiers",
    "passthru.commands.status",
)

DESCRIPTION = (
    "Passthru shares one TCP port between many services: it reads the first bytes of each "
    "connection, recognises the protocol (TLS with its SNI, HTTP with its Host, SSH, ...) and "
    "forwards the whole connection, untouched, to the backend your routes name."
)
EPILOG = (
    "Every command that reads a config takes -c PATH (default: ./config.yaml). "
    "Run 'passthru COMMAND --help' for a command's options."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="passthru", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-V", "--version", action="version", version=f"passthru {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
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
