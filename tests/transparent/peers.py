"""The two peers of the namespace tests, each run with ``ip netns exec`` in its own namespace.

``backend HOST PORT``: accept connections one after another; read the first line and answer
one JSON line ``{"peer": ..., "port": ..., "first": ...}``: the address the backend sees the
connection come from. Prints ``ready`` once it listens.

``client HOST PORT``: connect, send ``SSH-2.0-x\\r\\n``, half-close, and print one JSON line
``{"local": ..., "reply": ...}`` (``"error"`` instead of ``"reply"`` when the connect failed).
Plain standard library: these run with the test's interpreter, outside Passthru.
"""

from __future__ import annotations

import json
import socket
import sys

BANNER = b"SSH-2.0-x\r\n"


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def backend(host: str, port: int) -> None:
    server = socket.socket(family_of(host), socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, peer = server.accept()
        with conn:
            conn.settimeout(10)
            first = b""
            try:
                while b"\n" not in first:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    first += chunk
            except OSError:
                continue
            answer = {"peer": peer[0], "port": peer[1], "first": first.decode("ascii", "replace")}
            conn.sendall(json.dumps(answer).encode() + b"\n")


def client(host: str, port: int) -> None:
    result: dict[str, object] = {}
    try:
        with socket.create_connection((host, port), timeout=10) as conn:
            result["local"] = conn.getsockname()[0]
            conn.sendall(BANNER)
            conn.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
            result["reply"] = reply.decode("ascii", "replace")
    except OSError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    role, address, number = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"backend": backend, "client": client}[role](address, number)
