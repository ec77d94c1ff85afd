"""Container health check: exit 0 when the first address in ``listen`` accepts a connection.

Run by the image's HEALTHCHECK as ``python healthcheck.py /etc/passthru/config.yaml``. It reads
the same config the server runs with, so a mounted config with another port still checks the
right one. A wildcard address (``0.0.0.0``, ``[::]``) is checked on loopback. The probe sends
nothing and closes, which the server logs as a connection that ended before identification.
"""

from __future__ import annotations

import socket
import sys

from ruamel.yaml import YAML

from passthru.config.addresses import split_host_port

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def first_listen_address(config_path: str) -> tuple[str, int]:
    with open(config_path, encoding="utf-8") as f:
        config = YAML(typ="safe").load(f)
    listen = config["listen"]
    entry = listen[0] if isinstance(listen, list) else listen
    address = entry["address"] if isinstance(entry, dict) else entry
    host, port = split_host_port(address)
    return WILDCARDS.get(host, host), port


def main(argv: list[str]) -> int:
    config_path = argv[1] if len(argv) > 1 else "/etc/passthru/config.yaml"
    try:
        host, port = first_listen_address(config_path)
        socket.create_connection((host, port), timeout=3).close()
    except Exception as exc:  # any failure is "unhealthy", with the reason for `docker inspect`
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
