"""Backend pools through a real ``passthru run``: balancing, failover, health checks, recovery."""

from __future__ import annotations

import signal
import socket
import time
from collections import Counter

from passthru.config.addresses import parse_endpoint
from passthru.server.backends import Backends
from passthru.server.balance import Member, source_hash
from tests.pools.servers import CheckedServer
from tests.support.backends import Blackhole
from tests.support.net import free_port, recv_all
from tests.support.waiting import PATIENCE

REQUEST = b"GET /pool HTTP/1.1\r\nHost: api.example.com\r\n\r\n"


def route(backends: str, extra: str = "") -> str:
    return f"routes:\n  - name: api\n    match: {{protocol: http}}\n    to: {backends}\n{extra}"


def request(port: int, *, source: str | None = None, payload: bytes = REQUEST) -> bytes:
    """One connection: send ``payload``, half-close, return everything until EOF."""
    sock = socket.socket()
    sock.settimeout(10)
    if source:
        sock.bind((source, 0))
    with sock:
        sock.connect(("127.0.0.1", port))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)


def tag(reply: bytes) -> str:
    """``[a]GET ...`` -> ``a``."""
    assert reply.startswith(b"[") and reply.endswith(REQUEST), reply
    return reply[1 : reply.index(b"]")].decode()


def wait_count(proc, needle: str, count: int, timeout: float = PATIENCE) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = proc.logs()
        if text.count(needle) >= count:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not {count} times in the passthru log:\n{text}")
        time.sleep(0.02)


def test_round_robin_spreads_by_weight(pool) -> None:
    with CheckedServer("a") as a, CheckedServer("b") as b:
        proc = pool(route(f"[{{address: {a.address}, weight: 3}}, {b.address}]"))
        tags = "".join(tag(request(proc.port)) for _ in range(8))
        assert Counter(tags) == {"a": 6, "b": 2}
        assert tags == "aabaaaba"  # smooth: never more than 3 in a row, b interleaved


def test_least_conn_prefers_the_idle_backend(pool) -> None:
    with CheckedServer("a") as a, CheckedServer("b") as b:
        proc = pool(route(f"[{a.address}, {b.address}]", "    balance: least_conn\n"))
        held = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        try:
            held.sendall(REQUEST)
            busy = held.recv(3).decode()[1]  # "[a]" or "[b]": it stays open
            idle = "b" if busy == "a" else "a"
            # A short connection is released in the same hub callback that sends its client the
            # EOF, so the next one sees the count already down: no race to wait out.
            for _ in range(5):
                assert tag(request(proc.port)) == idle
        finally:
            held.close()


def test_source_hash_sticks_per_client_address(pool) -> None:
    with CheckedServer("a") as a, CheckedServer("b") as b, CheckedServer("c") as c:
        servers = {"a": a, "b": b, "c": c}
        proc = pool(route(f"[{a.address}, {b.address}, {c.address}]", "    balance: source_hash\n"))
        members = [Member(parse_endpoint(s.address), 1, Backends().state(parse_endpoint(s.address))) for s in (a, b, c)]
        seen = {}
        for last in range(2, 10):
            source = f"127.0.0.{last}"
            got = {tag(request(proc.port, source=source)) for _ in range(3)}
            assert len(got) == 1, f"{source} went to {got}"
            seen[source] = got.pop()
            predicted = source_hash(members, source, True)[0].endpoint  # every worker agrees
            assert servers[seen[source]].address == str(predicted)
        assert len(set(seen.values())) >= 2


def test_refused_backend_is_marked_down_and_the_client_notices_nothing(pool) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with CheckedServer("live") as live:
        proc = pool(route(f"[{dead}, {live.address}]"))
        payload = REQUEST.replace(b"\r\n\r\n", b"\r\nX-Pad: " + b"x" * 3000 + b"\r\n\r\n")
        for _ in range(6):
            assert request(proc.port, payload=payload) == b"[live]" + payload
        assert live.received == [payload] * 6  # the prefix arrived whole, exactly once each
        text = wait_count(proc, f"upstream={live.address}", 6)
        assert text.count(f"backend {dead} of route api is DOWN: connection refused (a client's connect failed)") == 1
        assert "end=upstream_unavailable" not in text


def test_connect_timeout_fails_over_and_the_state_survives_a_reload(pool) -> None:
    with Blackhole() as hole, CheckedServer("live") as live:
        proc = pool(route(f"[{hole.address}, {live.address}]", "    balance: first\n"), connect="300ms")
        started = time.monotonic()
        assert tag(request(proc.port)) == "live"
        assert 0.25 < time.monotonic() - started < 2
        proc.wait_for_log(f"backend {hole.address} of route api is DOWN: connect timed out")
        started = time.monotonic()
        assert tag(request(proc.port)) == "live"
        assert time.monotonic() - started < 0.25  # the dead one is not tried first any more
        proc.process.send_signal(signal.SIGHUP)
        proc.wait_for_log("reloaded")
        started = time.monotonic()
        assert tag(request(proc.port)) == "live"
        assert time.monotonic() - started < 0.25  # still known dead after the reload
        assert proc.logs().count("is DOWN") == 1


def test_health_check_with_send_expect_marks_down_and_back_up(pool) -> None:
    interval, rise, fall = 0.2, 2, 2
    check = (
        f'    health_check: {{interval: {int(interval * 1000)}ms, timeout: 200ms, send: "PING\\r\\n", '
        f'expect: "+PONG", rise: {rise}, fall: {fall}}}\n'
    )
    with CheckedServer("a") as a, CheckedServer("b") as b:
        proc = pool(route(f"[{a.address}, {b.address}]", check))
        assert Counter(tag(request(proc.port)) for _ in range(4)) == {"a": 2, "b": 2}
        a.reply = b"-ERR loading\r\n"
        down = f"backend {a.address} of route api is DOWN: unexpected reply b'-ERR ' "
        proc.wait_for_log(down, timeout=interval * (fall + 1) + 1)
        assert Counter(tag(request(proc.port)) for _ in range(4)) == {"b": 4}
        a.reply = b"+PONG\r\n"
        healed = time.monotonic()
        up = f"backend {a.address} of route api is UP (health check passed {rise} times in a row)"
        proc.wait_for_log(up, timeout=5)
        took = time.monotonic() - healed
        assert took < interval * rise + 0.3, f"back up after {took:.2f}s"
        assert Counter(tag(request(proc.port)) for _ in range(4)) == {"a": 2, "b": 2}
        time.sleep(interval * 3)  # more passing checks: no more log lines
        text = proc.logs()
        assert text.count(down) == 1
        assert text.count(up) == 1
        assert b.checks > 0 and text.count(f"backend {b.address}") == 0


def test_a_down_backend_without_health_check_comes_back_by_itself(pool) -> None:
    port = free_port()
    with CheckedServer("live") as live:
        proc = pool(route(f"[127.0.0.1:{port}, {live.address}]"))
        assert tag(request(proc.port)) == "live"
        proc.wait_for_log(f"backend 127.0.0.1:{port} of route api is DOWN: connection refused")
        with CheckedServer("back", port=port) as back:
            started = time.monotonic()
            proc.wait_for_log(f"backend 127.0.0.1:{port} of route api is UP (a background connect succeeded)", 4)
            assert time.monotonic() - started < 2.5
            assert Counter(tag(request(proc.port)) for _ in range(4)) == {"back": 2, "live": 2}
            assert back.checks == 0  # the probe is a plain connect: nothing sent
