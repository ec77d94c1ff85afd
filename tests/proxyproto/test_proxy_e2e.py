"""PROXY protocol end to end, with real peers on loopback only.

1. To backends: a real nginx (``listen … proxy_protocol``) behind Passthru sees the real client
   (curl's own address and port) for routes with ``proxy_protocol: v1`` and ``v2``, IPv4 and IPv6.
2. From a load balancer: a real HAProxy (``send-proxy`` / ``send-proxy-v2``) in front of a
   Passthru listener with ``proxy_protocol: accept``: the log names HAProxy's client, the bytes
   after the header reach the backend unchanged, and chained to nginx the ORIGINAL client (and the
   address it dialed) arrives. HAProxy's health checks (v2 LOCAL) are accepted.
3. Refused: a header from an untrusted peer, and a trusted peer without a valid header, are closed
   and logged as ``end=proxy_protocol_error``; the backend is never dialed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from passthru.proxyproto import V2_MAX, header_v1, header_v2
from tests.proxyproto.peers import (
    TIMEOUTS,
    Frontend,
    HAProxy,
    Nginx,
    connection_line,
    curl,
    exchange_from,
    log_address,
    start_passthru,
    url_host,
)
from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import PassthruProcess
from tests.support.waiting import PATIENCE

PAYLOAD = b"POST /upload HTTP/1.1\r\nHost: tell.test\r\nContent-Length: 256\r\n\r\n" + bytes(range(256))
ERROR = "end=proxy_protocol_error"


def nginx_routes(nginx: Nginx) -> str:
    """Four routes to nginx: v1/v2 header, to its IPv4 or its IPv6 listener."""
    routes = []
    for version in ("v1", "v2"):
        for family, target in (("4", f"127.0.0.1:{nginx.port4}"), ("6", f'"[::1]:{nginx.port6}"')):
            routes.append(
                f"  - name: nginx-{version}-{family}\n"
                f"    match: {{protocol: http, host: {version}.pp{family}.test}}\n"
                f"    to: {target}\n"
                f"    proxy_protocol: {version}\n"
            )
    return "".join(routes)


def upstream_of(nginx: Nginx, family: str) -> str:
    return f"127.0.0.1:{nginx.port4}" if family == "4" else f"[::1]:{nginx.port6}"


# -- 1. PROXY to backends --------------------------------------------------------------------


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory, nginx: Nginx) -> Iterator[tuple[PassthruProcess, int, int]]:
    port4, port6 = free_port("127.0.0.1"), free_port("::1")
    config = f'listen:\n  - 127.0.0.1:{port4}\n  - "[::1]:{port6}"\n{TIMEOUTS}routes:\n{nginx_routes(nginx)}'
    proc = start_passthru(tmp_path_factory.mktemp("direct"), config, [f"127.0.0.1:{port4}", f"[::1]:{port6}"])
    yield proc, port4, port6
    proc.stop()


@pytest.mark.parametrize("backend", ["4", "6"], ids=["to-nginx-v4", "to-nginx-v6"])
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("client_host", ["127.0.0.1", "::1"], ids=["client-v4", "client-v6"])
def test_nginx_sees_the_real_client(direct, nginx: Nginx, client_host: str, version: str, backend: str) -> None:
    proc, port4, port6 = direct
    port = port4 if client_host == "127.0.0.1" else port6
    body, me = curl(client_host, port, f"{version}.pp{backend}.test")
    assert body[0] == me, f"nginx saw {body[0]}, curl was {me}\n{nginx.error_log()}"
    assert body[1] == f"{client_host}:{port}", "the destination is the address the client dialed"
    client = log_address((me.rpartition(":")[0], int(me.rpartition(":")[2])))
    line = connection_line(proc, client)
    assert f"route=nginx-{version}-{backend} upstream={upstream_of(nginx, backend)}" in line
    assert f"listener={url_host(client_host)}:{port}" in line


# -- 2. PROXY from a load balancer -----------------------------------------------------------


@pytest.fixture(scope="module")
def tell() -> Iterator[TagServer]:
    with TagServer("tell") as backend:
        yield backend


@pytest.fixture(scope="module")
def behind_haproxy(
    tmp_path_factory: pytest.TempPathFactory, nginx: Nginx, tell: TagServer
) -> Iterator[tuple[PassthruProcess, HAProxy, int, int]]:
    """Passthru with PROXY-accepting listeners on 127.0.0.1 (trusting 127.0.0.0/8) and [::1]
    (trusting ::1/128), behind HAProxy frontends sending v1, v2, and v2 over IPv6."""
    port4, port6 = free_port("127.0.0.1"), free_port("::1")
    config = (
        "listen:\n"
        f"  - {{address: 127.0.0.1:{port4}, proxy_protocol: accept, trusted_proxies: [127.0.0.0/8]}}\n"
        f'  - {{address: "[::1]:{port6}", proxy_protocol: accept, trusted_proxies: ["::1/128"]}}\n'
        f"{TIMEOUTS}routes:\n"
        f"  - name: tell\n    match: {{protocol: http, host: tell.test}}\n    to: {tell.address}\n"
        f"{nginx_routes(nginx)}"
    )
    proc = start_passthru(tmp_path_factory.mktemp("behind-haproxy"), config, [f"127.0.0.1:{port4}", f"[::1]:{port6}"])
    haproxy = HAProxy(
        tmp_path_factory.mktemp("haproxy"),
        [
            Frontend("send_proxy", f"127.0.0.1:{port4}", "send-proxy"),
            Frontend("send_proxy_v2", f"127.0.0.1:{port4}", "send-proxy-v2"),
            Frontend("send_proxy_v2_over_v6", f"[::1]:{port6}", "send-proxy-v2"),
        ],
    )
    try:
        haproxy.start()
        yield proc, haproxy, port4, port6
    finally:
        haproxy.stop()
        proc.stop()


@pytest.mark.parametrize("frontend", ["send_proxy", "send_proxy_v2", "send_proxy_v2_over_v6"])
@pytest.mark.parametrize("client_host", ["127.0.0.1", "::1"], ids=["client-v4", "client-v6"])
def test_haproxy_client_is_logged_and_bytes_arrive_unchanged(
    behind_haproxy, tell: TagServer, frontend: str, client_host: str
) -> None:
    proc, haproxy, port4, port6 = behind_haproxy
    me, reply = exchange_from(client_host, haproxy.port(frontend), PAYLOAD)
    assert reply == b"[tell]" + PAYLOAD, haproxy.logs()
    line = connection_line(proc, log_address(me))
    listener = f"[::1]:{port6}" if frontend.endswith("_v6") else f"127.0.0.1:{port4}"
    assert f"listener={listener} protocol=http" in line
    assert f"route=tell upstream={tell.address}" in line
    assert "end=closed" in line
    assert PAYLOAD in tell.received, "the backend got exactly the client's bytes, no header"
    assert all(got.startswith(b"POST /upload") for got in tell.received)


@pytest.mark.parametrize("route", ["v1.pp4.test", "v2.pp6.test"])
@pytest.mark.parametrize("frontend", ["send_proxy", "send_proxy_v2", "send_proxy_v2_over_v6"])
@pytest.mark.parametrize("client_host", ["127.0.0.1", "::1"], ids=["client-v4", "client-v6"])
def test_chained_nginx_sees_the_original_client(
    behind_haproxy, nginx: Nginx, frontend: str, client_host: str, route: str
) -> None:
    """curl -> HAProxy (send-proxy[-v2]) -> Passthru (accept) -> nginx (proxy_protocol v1/v2)."""
    proc, haproxy, _, _ = behind_haproxy
    port = haproxy.port(frontend)
    body, me = curl(client_host, port, route)
    assert body[0] == me, f"nginx saw {body[0]}, the original client was {me}"
    assert body[1] == f"{client_host}:{port}", "the destination is what the client dialed (HAProxy's)"
    line = connection_line(proc, log_address((me.rpartition(":")[0], int(me.rpartition(":")[2]))))
    assert f"route=nginx-{route[:2]}-{route[5]}" in line


@pytest.fixture
def health_checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PassthruProcess]:
    """Passthru accepting PROXY headers, health-checked by HAProxy (``send-proxy-v2`` sends LOCAL
    with its checks). HAProxy's frontend turns every client away, so every connection Passthru
    logs is a check; they send nothing after the header, so no route is needed."""
    port = free_port()
    config = (
        f"listen:\n  - {{address: 127.0.0.1:{port}, proxy_protocol: accept, trusted_proxies: [127.0.0.0/8]}}\n"
        f"{TIMEOUTS}routes:\n  - name: web\n    match: {{protocol: http}}\n    to: 127.0.0.1:9\n"
    )
    proc = start_passthru(tmp_path_factory.mktemp("health"), config, [f"127.0.0.1:{port}"])
    checks = Frontend(
        "checks",
        f"127.0.0.1:{port}",
        "send-proxy-v2 check check-send-proxy inter 100ms",
        "tcp-request connection reject",
    )
    haproxy = HAProxy(tmp_path_factory.mktemp("haproxy-checks"), [checks])
    try:
        haproxy.start()
        yield proc
    finally:
        haproxy.stop()
        proc.stop()


def test_haproxy_health_checks_send_local_and_are_accepted(health_checked: PassthruProcess) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        lines = [line for line in health_checked.logs().splitlines() if " end=" in line]
        if len(lines) >= 3:
            break
        time.sleep(0.1)
    assert len(lines) >= 3, health_checked.logs()
    for line in lines:
        assert "client=127.0.0.1:" in line and ERROR not in line, line
        assert "protocol=- " in line, "the header was stripped, not handed to the identifiers"
        assert "route=- upstream=-" in line, "a check sends nothing after its header: nothing to route"


# -- 3. Refused ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PassthruProcess, TagServer, int, int]]:
    """Listeners trusting 10.0.0.0/8 (so 127.0.0.1 is untrusted) and 127.0.0.0/8; every way to a
    route (rules, default, on_timeout) leads to one backend, which must never be dialed."""
    with TagServer("never") as backend:
        untrusted, trusted = free_port(), free_port()
        config = (
            "listen:\n"
            f"  - {{address: 127.0.0.1:{untrusted}, proxy_protocol: accept, trusted_proxies: [10.0.0.0/8]}}\n"
            f"  - {{address: 127.0.0.1:{trusted}, proxy_protocol: accept, trusted_proxies: [127.0.0.0/8]}}\n"
            f"{TIMEOUTS}routes:\n  - name: web\n    match: {{protocol: http}}\n    to: {backend.address}\n"
            f"default: {backend.address}\non_timeout: {backend.address}\n"
        )
        proc = start_passthru(
            tmp_path_factory.mktemp("guarded"), config, [f"127.0.0.1:{untrusted}", f"127.0.0.1:{trusted}"]
        )
        try:
            yield proc, backend, untrusted, trusted
        finally:
            proc.stop()


def refused(port: int, data: bytes | None, half_close: bool = False) -> str:
    """Connect from 127.0.0.1, send ``data`` (None: stay silent), expect to be closed without a
    byte of answer; the address we connected from, as logged."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        me = log_address(sock.getsockname())
        if data is not None:
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        try:
            answer = recv_all(sock)
        except ConnectionResetError:
            answer = b""
    assert answer == b"", answer
    return me


HTTP = b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n"


@pytest.mark.parametrize(
    "data",
    [
        header_v1(("203.0.113.7", 4000), ("127.0.0.1", 443)) + HTTP,
        header_v2(("203.0.113.7", 4000), ("127.0.0.1", 443)) + HTTP,
        HTTP,
    ],
    ids=["v1-header", "v2-header", "no-header"],
)
def test_untrusted_peer_is_closed_and_logged(guarded, data: bytes) -> None:
    proc, backend, untrusted, _ = guarded
    me = refused(untrusted, data)
    line = connection_line(proc, me)
    assert ERROR in line and "route=- upstream=-" in line, line
    assert "203.0.113.7" not in line, "an untrusted header is never believed"
    assert backend.connections == 0


@pytest.mark.parametrize(
    ("data", "half_close"),
    [
        (HTTP, False),  # no header at all
        (b"PROXY TCP4 203.0.113.7 127.0.0.1 4000 443\n" + HTTP, False),  # bare LF: not a header
        (header_v2(("203.0.113.7", 4000), ("127.0.0.1", 443))[:20], True),  # cut short, then EOF
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + (V2_MAX).to_bytes(2, "big") + bytes(64), False),  # too long
        (None, False),  # silent: closed when timeouts.identify runs out
    ],
    ids=["no-header", "bare-lf", "truncated", "too-long", "silent"],
)
def test_trusted_peer_without_a_valid_header_is_closed_and_logged(guarded, data, half_close: bool) -> None:
    proc, backend, _, trusted = guarded
    started = time.monotonic()
    me = refused(trusted, data, half_close)
    if data is None:
        assert time.monotonic() - started < 5
    line = connection_line(proc, me)
    assert ERROR in line and "route=- upstream=-" in line, line
    assert backend.connections == 0


# -- client bytes that come with the header --------------------------------------------------


@pytest.fixture(scope="module", params=["16KiB", "64B"], ids=["default-limit", "identify_bytes-64B"])
def small_limit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tell: TagServer):
    """A PROXY-accepting listener; with ``identify_bytes: 64B`` the bytes that arrive in the same
    read as the header can be more than the identification limit."""
    port = free_port()
    config = (
        f"listen:\n  - {{address: 127.0.0.1:{port}, proxy_protocol: accept, trusted_proxies: [127.0.0.0/8]}}\n"
        f"{TIMEOUTS}limits:\n  identify_bytes: {request.param}\n"
        f"routes:\n  - name: tell\n    match: {{protocol: http}}\n    to: {tell.address}\n"
    )
    proc = start_passthru(tmp_path_factory.mktemp("small-limit"), config, [f"127.0.0.1:{port}"])
    yield proc, port
    proc.stop()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_client_bytes_sent_with_the_header_all_reach_the_backend(small_limit, tell: TagServer, version: str) -> None:
    """A trusted peer writes the header and the client's first bytes in one segment: every client
    byte reaches the backend, in order, even when they exceed ``limits.identify_bytes``."""
    proc, port = small_limit
    payload = PAYLOAD + bytes(range(256)) * 8  # 2.4 KB: more than 64 B, less than the header bound
    make = header_v1 if version == "v1" else header_v2
    header = make(("203.0.113.7", 4000), ("192.0.2.1", 443))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(header + payload)
        sock.shutdown(socket.SHUT_WR)
        reply = recv_all(sock)
    assert reply == b"[tell]" + payload, f"{len(reply)} bytes back\n{proc.logs()[-2000:]}"
    assert payload in tell.received
