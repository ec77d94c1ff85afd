"""End to end on real sockets: ``passthru run`` with a route naming a user identifier; saving the
file changes where new connections go within a second, a relayed connection is untouched, a
broken save keeps the previous version, and deleting the file makes the route stop matching."""

from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

from tests.support.backends import TagServer
from tests.support.net import exchange, expect


def greeting(word: str) -> str:
    """The DESIGN.md example, with the greeting word as a parameter."""
    return textwrap.dedent(
        f"""
        NAME = "greeting"

        def identify(data: bytes):
            if len(data) < 6:
                return 6 if b"{word} ".startswith(data) else None
            if not data.startswith(b"{word} "):
                return None
            return {{"who": data[6:].split(b"\\r\\n")[0].decode("ascii", "replace")}}

        SAMPLES = {{"match": [b"{word} bob\\r\\n"], "no_match": [b"GET / HTTP/1.1\\r\\n"]}}
        """
    )


def save(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.swp")
    temporary.write_text(text)
    os.replace(temporary, path)


def reaches(port: int, payload: bytes) -> bytes:
    """The tag of the backend the connection reached (b"" when it was rejected)."""
    answer = exchange(port, payload, timeout=5)
    return answer[: answer.find(b"]") + 1]


def until(payload: bytes, port: int, expected: bytes, timeout: float = 1.0) -> float:
    started = time.monotonic()
    while reaches(port, payload) != expected:
        assert time.monotonic() - started < timeout, f"{payload!r} did not reach {expected!r} within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_saving_a_user_identifier_moves_new_connections_only(tmp_path, passthru):
    identifiers = tmp_path / "identifiers"
    identifiers.mkdir()
    path = identifiers / "greeting.py"
    path.write_text(greeting("HELLO"))
    with TagServer("greeting") as backend, TagServer("default") as fallback:
        proc = passthru(
            f"routes:\n  - name: greeting\n    match: {{protocol: greeting}}\n    to: {backend.address}\n"
            f"default: {fallback.address}\n"
        )
        assert reaches(proc.port, b"HELLO bob\r\n") == b"[greeting]"
        assert reaches(proc.port, b"HOWDY bob\r\n") == b"[default]"

        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as relayed:
            relayed.sendall(b"HELLO alice\r\n")
            expect(relayed, b"[greeting]HELLO alice\r\n")

            save(path, greeting("HOWDY"))
            took = until(b"HOWDY bob\r\n", proc.port, b"[greeting]")
            assert reaches(proc.port, b"HELLO bob\r\n") == b"[default]"
            assert took < 1.0

            relayed.sendall(b"still here")  # the connection relayed before the save is untouched
            expect(relayed, b"still here")

        save(path, greeting("HOWDY").replace("return None", "return None +", 1))
        proc.wait_for_log(f"{path}:")
        time.sleep(0.3)
        assert reaches(proc.port, b"HOWDY bob\r\n") == b"[greeting]", "the previous version keeps serving"
        assert "SyntaxError" in proc.logs() and "still serving the previous version" in proc.logs()

        path.unlink()
        until(b"HOWDY bob\r\n", proc.port, b"[default]")
        proc.wait_for_log("routes naming it will not match")


def test_a_runaway_identifier_is_cut_off_and_disabled_while_others_keep_working(tmp_path, passthru):
    identifiers = tmp_path / "identifiers"
    identifiers.mkdir()
    (identifiers / "greeting.py").write_text(greeting("HELLO"))
    (identifiers / "spin.py").write_text(
        "def identify(data):\n    while data.startswith(b'SPIN'):\n        pass\n    return None\n"
    )
    with TagServer("greeting") as backend, TagServer("default") as fallback:
        proc = passthru(
            f"routes:\n  - name: greeting\n    match: {{protocol: greeting}}\n    to: {backend.address}\n"
            f"default: {fallback.address}\n"
        )
        for _ in range(5):
            started = time.monotonic()
            assert reaches(proc.port, b"SPIN me\r\n") == b"[default]"
            assert time.monotonic() - started < 1.0
        proc.wait_for_log("disabled after 5 failures")
        assert reaches(proc.port, b"HELLO bob\r\n") == b"[greeting]"
        logs = proc.logs()
        assert f"{identifiers / 'spin.py'}:2:" in logs or f"{identifiers / 'spin.py'}:3:" in logs, logs
