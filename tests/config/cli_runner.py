"""Run ``passthru route ...`` / ``passthru config ...`` in-process or as a subprocess.

The parser is built from the two command modules directly, so these tests do not depend on
which modules ``passthru.cli.COMMAND_MODULES`` lists.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from passthru.commands import config_cmd, route

MODULES = (route, config_cmd)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="passthru")
    subparsers = top.add_subparsers(dest="command", required=True)
    for module in MODULES:
        module.register(subparsers)
    return top


def run(*argv: str) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


def spawn(*argv: str) -> subprocess.Popen:
    code = "import sys; from tests.config.cli_runner import run; sys.exit(run(*sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
