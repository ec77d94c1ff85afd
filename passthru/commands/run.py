"""``passthru run``: serve the config until SIGTERM/SIGINT; SIGHUP reloads."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from passthru.bootstrap import load_with_identifiers
from passthru.cli import add_config_option
from passthru.config import Config, ConfigErrors
from passthru.plugins import UserIdentifiers
from passthru.server.privileges import resolve

log = logging.getLogger("passthru")


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
    from passthru.admin import observability
    from passthru.server.rlimits import raise_open_files_limit
    from passthru.server.workers import Supervisor

    setup_logging(args.log_level)
    try:
        config, user = load_with_identifiers(args.config)
    except ConfigErrors as errors:
        print(errors, file=sys.stderr)
        return 1
    raise_open_files_limit()
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(observability(config.admin, config.admin_access))  # before forking
        except OSError as exc:
            log.error("cannot serve the admin endpoint on %s: %s", config.admin, exc)
            return 1
        hand_over_metrics(config)
        if config.workers <= 1:
            return serve(args, user, worker=0, reuse_port=False)
        log.info("starting %d workers sharing each listen port (SO_REUSEPORT)", config.workers)
        return Supervisor(config.workers, lambda index: serve(args, user, worker=index, reuse_port=True)).run()


def hand_over_metrics(config: Config) -> None:
    """With ``user:``, serving processes drop root: give them the metrics directory first."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    ids = resolve(config.user, config.group)
    if directory is None or ids is None or os.geteuid() != 0:
        return
    os.chown(directory, *ids)
    for entry in os.scandir(directory):
        os.chown(entry.path, *ids)


def serve(args: argparse.Namespace, user: UserIdentifiers, worker: int, reuse_port: bool) -> int:
    """One serving process: the whole server when ``workers`` is 1, else one worker."""
    import gevent

    from passthru.server.service import Service

    gevent.reinit()  # harmless in a fresh process; needed after fork if a hub already existed
    # the identifiers loaded above are inherited (a forked worker has its own copy); each
    # serving process watches the directory itself
    service = Service(args.config, user=user, log_format=args.log_format, worker=worker, reuse_port=reuse_port)
    try:
        service.serve_forever()
    except ConfigErrors as errors:
        print(errors, file=sys.stderr)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
