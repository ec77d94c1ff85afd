"""Container health check: exit 0 when Passthru answers.

Run by the image's HEALTHCHECK as ``python healthcheck.py /etc/passthru/config.yaml``. It reads
the same config the server runs with. With ``admin:`` it asks ``/healthz`` there (nothing is
logged, and it works whatever the listeners are, PROXY-protocol ones included); without it, it
connects to the first ``listen`` address, which the server logs as a connection that ended
before sending anything. A wildcard address (``0.0.0.0``, ``[::]``) is checked on loopback.
"""

from __future__ import annotations

import socket
import sys
import urllib.request

from ruamel.yaml import YAML

from passthru.config.addresses import split_host_port

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def read_config(config_path: str) -> dict:
    with open(config_path, encoding="utf-8") as f:
        return YAML(typ="safe").load(f)


def local(address: str) -> tuple[str, int]:
    host, port = split_host_port(address)
    return WILDCARDS.get(host, host), port


def first_listen_address(config: dict) -> tuple[str, int]:
    listen = config["listen"]
    entry = listen[0] if isinstance(listen, list) else listen
    return local(entry["address"] if isinstance(entry, dict) else entry)


def check(config: dict) -> None:
    """Raise unless Passthru answers: ``/healthz`` on the admin address, else a TCP connect."""
    if config.get("admin"):
        host, port = local(config["admin"])
        url = f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"
        with urllib.request.urlopen(url, timeout=3) as reply:
            if reply.status != 200:
                raise RuntimeError(f"{url} answered {reply.status}")
        return
    socket.create_connection(first_listen_address(config), timeout=3).close()


def main(argv: list[str]) -> int:
    config_path = argv[1] if len(argv) > 1 else "/etc/passthru/config.yaml"
    try:
        check(read_config(config_path))
    except Exception as exc:  # any failure is "unhealthy", with the reason for `docker inspect`
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
