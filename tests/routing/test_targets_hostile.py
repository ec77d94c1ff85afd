"""Upstream templates refuse hostile values before anything is dialed: canary servers on the
addresses a careless template would reach must see no connection.

The rendered value comes from a config regex rule that captures a whole line (so NUL, dots and
Unicode reach the template unfiltered). The only name resolved is ``localhost``: nothing here
sends a DNS query off the machine.
"""

from __future__ import annotations

import socket

import pytest

from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all

HOSTILE = {
    "an IP literal outside allow": "127.0.0.9",
    "a name allowed by glob that resolves outside allow": "localhost",
    "an embedded NUL": "127.0.0.2\x00.example.test",
    "a leading dot": ".a.example.test",
    "a doubled dot": "a..example.test",
    "two trailing dots": "a.example.test..",
    "a 300-character name": ("a" * 60 + ".") * 4 + "a" * 56 + ".example.test",
    "a 64-character label": "a" * 64 + ".example.test",
    "Unicode (not converted to punycode)": "bücher.example.test",
    "a punycode name outside allow": "xn--bcher-kva.elsewhere.test",
    "a short IPv4 form": "127.1",
    "an integer IPv4 form": "2130706433",
    "a hex IPv4 form": "0x7f.0.0.1",
    "a port": "127.0.0.2:22",
    "a path": "a.example.test/x",
    "a space": "a.example.test x",
    "an IPv6 literal outside allow": "::1",
}


@pytest.fixture(scope="module")
def servers():
    port = free_port("127.0.0.2")
    with (
        TagServer("good", host="127.0.0.2", port=port) as good,
        TagServer("canary-1", host="127.0.0.1", port=port) as canary1,
        TagServer("canary-9", host="127.0.0.9", port=port) as canary9,
    ):
        yield good, [canary1, canary9]


@pytest.fixture
def proc(passthru, servers):
    good, _ = servers
    return passthru(
        rf"""identifiers:
  - name: dial
    regex: '^DIAL (?P<target>[^\r\n]*)\r\n'
    min_length: 7
routes:
  - name: templated
    match: {{protocol: dial}}
    to: "{{target}}:{good.port}"
    allow: ["localhost", "*.example.test", "127.0.0.2/32"]
"""
    )


def dial(port: int, value: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"DIAL " + value.encode("utf-8") + b"\r\n")
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_values_are_never_dialed(proc, servers, value: str) -> None:
    good, canaries = servers
    before = good.connections
    assert dial(proc.port, value) == b""
    proc.wait_for_log("end=upstream_not_allowed")
    assert [c.connections for c in canaries] == [0, 0]
    assert good.connections == before


def test_an_allowed_literal_is_dialed(proc, servers) -> None:
    good, _ = servers
    before = good.connections
    assert dial(proc.port, "127.0.0.2").startswith(b"[good]")
    assert good.connections == before + 1


def test_upper_case_and_one_trailing_dot_are_normalized(passthru) -> None:
    with TagServer("local", host="127.0.0.1") as local:
        proc = passthru(
            rf"""identifiers:
  - {{name: dial, regex: '^DIAL (?P<target>[^\r\n]*)\r\n', min_length: 7}}
routes:
  - name: templated
    match: {{protocol: dial}}
    to: "{{target}}:{local.port}"
    allow: ["localhost", "127.0.0.0/8", "::1/128"]
"""
        )
        assert dial(proc.port, "LOCALHOST.").startswith(b"[local]")
        proc.wait_for_log(f"upstream=localhost:{local.port}")
