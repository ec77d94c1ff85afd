"""Container health check: exit 0 when Passthru answers.

Run by the image's HEALTHCHECK as ``python healthcheck.py /etc/passthru/config.yaml``. It reads
the same config the server runs with. With ``admin:`` (either form) it asks ``/healthz`` there
(nothing is logged, and it works whatever the listeners are); without it, it connects to the first
plain ``listen`` address, which the server logs as a connection that ended before sending
anything. When every listener is ``proxy_protocol: accept``, it sends a PROXY v2 ``LOCAL`` header
(the protocol's own "health check" command) to the first: with 127.0.0.1 (or ::1) in that
listener's ``trusted_proxies`` the server accepts it like any check; otherwise the connect still
proves the server is up, but the server logs each check as ``end=proxy_protocol_error``.
A wildcard address (``0.0.0.0``, ``[::]``) is checked on loopback.
"""

from __future__ import annotations

import socket
import sys
import urllib.request

from ruamel.yaml import YAML

from passthru.config.addresses import split_host_port
from passthru.identify.proxy_protocol import V2_SIGNATURE

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
#: A PROXY protocol v2 header with the LOCAL command and no addresses: "a health check".
PROXY_V2_LOCAL = V2_SIGNATURE + b"\x20\x00\x00\x00"


def read_config(config_path: str) -> dict:
    with open(config_path, encoding="utf-8") as f:
        return YAML(typ="safe").load(f)


def local(address: str) -> tuple[str, int]:
    host, port = split_host_port(address)
    return WILDCARDS.get(host, host), port


def listen_target(config: dict) -> tuple[tuple[str, int], bool]:
    """The address to check and whether it wants a PROXY header: the first plain listener, else
    the first listener (all of them accept PROXY headers)."""
    listen = config["listen"]
    entries = listen if isinstance(listen, list) else [listen]
    for entry in entries:
        if not (isinstance(entry, dict) and entry.get("proxy_protocol") == "accept"):
            return local(entry["address"] if isinstance(entry, dict) else entry), False
    return local(entries[0]["address"]), True


def check(config: dict) -> None:
    """Raise unless Passthru answers: ``/healthz`` on the admin address, else a TCP connect."""
    admin = config.get("admin")
    if isinstance(admin, dict):
        admin = admin.get("address")
    if admin:
        host, port = local(admin)
        url = f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"
        with urllib.request.urlopen(url, timeout=3) as reply:
            if reply.status != 200:
                raise RuntimeError(f"{url} answered {reply.status}")
        return
    address, proxy_header = listen_target(config)
    with socket.create_connection(address, timeout=3) as sock:
        if proxy_header:
            sock.sendall(PROXY_V2_LOCAL)


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
