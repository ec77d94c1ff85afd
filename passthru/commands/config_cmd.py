"""``passthru config get KEY`` / ``passthru config set KEY VALUE``: read or change one setting
in config.yaml by its dotted key, keeping comments and layout (see ``passthru/config/edit.py``)."""

from __future__ import annotations

import argparse
import sys
from functools import partial

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from passthru.cli import add_config_option
from passthru.commands.editing import add_edit_options, run_edit
from passthru.config.edit import EditError, get_key, set_key


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="read or change one setting of the config")
    commands = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    get = commands.add_parser("get", help="print a setting, e.g. timeouts.identify (exit 1 when not set)")
    get.add_argument("key", help="dotted key; list entries by index from 0 or by name: routes.web.to")
    add_config_option(get)
    get.set_defaults(func=get_command)

    change = commands.add_parser("set", help="change or add a setting, e.g. timeouts.identify 5s")
    change.add_argument("key", help="dotted key; missing keys (and parent mappings) are added")
    change.add_argument("value", help="a YAML value: 5s, 4, auto, '[a:1, b:2]', '{identify_bytes: 32KiB}'")
    add_edit_options(change)
    change.set_defaults(func=set_command)


def parse_value(text: str) -> object:
    """The command-line value read as YAML (so ``4`` is a number and ``[a, b]`` a list);
    anything that does not parse is taken as a plain string."""
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        return text


def get_command(args: argparse.Namespace) -> int:
    try:
        with open(args.config, encoding="utf-8") as source:
            print(get_key(source.read(), args.key))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"passthru: cannot read {args.config}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 1
    except EditError as exc:
        print(f"passthru: {exc}", file=sys.stderr)
        return 1
    return 0


def set_command(args: argparse.Namespace) -> int:
    edit = partial(set_key, key=args.key, value=parse_value(args.value))
    return run_edit(args, edit, f"{args.key} set to {args.value}")
