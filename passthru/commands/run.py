"""``passthru run``: serve the config until SIGTERM/SIGINT; SIGHUP reloads."""

from __future__ import annotations

import argparse
import logging
import sys

from passthru.cli import add_config_option
from passthru.config import ConfigErrors


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="listen, identify, route and relay")
    add_config_option(parser)
    parser.add_argument("--log-format", choices=("text", "json"), help="per-connection log lines (default: config)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(func=run)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run(args: argparse.Namespace) -> int:
    from passthru.server.service import Service  # imported here: gevent only when serving

    setup_logging(args.log_level)
    service = Service(args.config, log_format=args.log_format)
    try:
        service.serve_forever()
    except ConfigErrors as errors:
        print(errors, file=sys.stderr)
        return 1
    except OSError as exc:
        logging.getLogger("passthru").error("cannot start: %s", exc)
        return 1
    return 0
