"""A running Passthru with ``admin:`` for the status tests: two workers, an ``ssh`` route to a real
backend, a ``web`` route whose backend refuses, and a user identifier file."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import PassthruProcess

SSH_HELLO = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

CONFIG = """\
listen: [127.0.0.1:{port}]
admin: 127.0.0.1:{admin}
workers: 2
timeouts: {{identify: 1s, connect: 1s}}
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: {ssh}
  - name: web
    match: {{protocol: http, host: example.com}}
    to: 127.0.0.1:{refusing}
  - name: zqx
    match: {{protocol: zqx}}
    to: {ssh}
default: reject
"""

IDENTIFIER = """\
NAME = "zqx"

def identify(data: bytes):
    if len(data) < 5:
        return 5 if b"ZQX1 ".startswith(data) else None
    return {} if data.startswith(b"ZQX1 ") else None

SAMPLES = {"match": [b"ZQX1 hi"], "no_match": [b"GET / HTTP/1.1\\r\\n"]}
"""


class Instance:
    def __init__(self, proc: PassthruProcess, port: int, admin: int, backend: TagServer) -> None:
        self.proc, self.port, self.admin, self.backend = proc, port, admin, backend
        self.directory = proc.directory

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.admin}/"

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "status.json", timeout=5) as response:
            return json.loads(response.read(), parse_constant=strict)

    def wait_status(self, predicate: Callable[[dict[str, Any]], object], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if predicate(status):
                return status
            assert time.monotonic() < deadline, json.dumps(status, indent=1)[:4000]
            time.sleep(0.1)

    def ssh(self) -> None:
        """A relayed connection: the backend's tag comes back through Passthru."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(SSH_HELLO)
            assert sock.recv(5) == b"[ssh]"

    def send(self, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            return recv_all(sock)


def strict(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON (browsers refuse it)")


def route(status: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [r for r in status["routes"] if r["name"] == name]
    return found


def identifier(status: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [i for i in status["identifiers"] if i["name"] == name]
    return found


@contextmanager
def running(directory: Path) -> Iterator[Instance]:
    (directory / "identifiers").mkdir()
    (directory / "identifiers" / "zqx.py").write_text(IDENTIFIER)
    with TagServer("ssh") as backend:
        port, admin = free_port(), free_port()
        config = CONFIG.format(port=port, admin=admin, ssh=backend.address, refusing=free_port())
        with PassthruProcess(directory, config, [("127.0.0.1", port), ("127.0.0.1", admin)]) as proc:
            instance = Instance(proc, port, admin, backend)
            instance.wait_status(lambda s: len(s["workers"]) == 2 and s["routes"])
            yield instance
