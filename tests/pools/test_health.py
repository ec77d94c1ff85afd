"""Backend state and health checks in-process (gevent, real sockets on 127.0.0.1)."""

from __future__ import annotations

import logging
import textwrap

import gevent
import pytest

from passthru.config import load_config_text
from passthru.config.addresses import parse_endpoint
from passthru.config.model import HealthCheck
from passthru.server.backends import Backends
from passthru.server.health import Check, HealthMonitor, plan, probe
from passthru.server.upstream import Balancer, UpstreamUnavailable, dial_any
from tests.pools.servers import PING, CheckedServer, Silent
from tests.support.backends import Blackhole
from tests.support.net import free_port

PONG_CHECK = HealthCheck(interval=0.05, timeout=0.3, send=PING, expect=b"+PONG", rise=2, fall=3)


def endpoint(port: int):
    return parse_endpoint(f"127.0.0.1:{port}")


# -- one probe ------------------------------------------------------------------------------------


def test_probe_passes_when_the_reply_starts_with_expect() -> None:
    with CheckedServer("a") as server:
        assert probe(endpoint(server.port), PONG_CHECK) is None
        assert probe(endpoint(server.port), HealthCheck(timeout=0.3)) is None  # plain TCP connect
        assert server.checks == 1


def test_probe_failures_say_why() -> None:
    with CheckedServer("a", reply=b"-ERR not ready\r\n") as server:
        assert probe(endpoint(server.port), PONG_CHECK) == (
            "unexpected reply b'-ERR ' (expected it to start with b'+PONG')"  # as much as expect's length
        )
        server.reply = b"+PO"
        assert probe(endpoint(server.port), PONG_CHECK) == (
            "closed after b'+PO' (expected a reply starting with b'+PONG')"
        )
        server.reply = b""
        assert probe(endpoint(server.port), PONG_CHECK) == (
            "closed without replying (expected a reply starting with b'+PONG')"
        )
    assert probe(endpoint(free_port()), PONG_CHECK) == "connection refused"
    silent = Silent()
    try:
        assert probe(endpoint(silent.port), PONG_CHECK) == "reply timed out after 0.3s"
    finally:
        silent.close()
    with Blackhole() as hole:
        assert probe(endpoint(hole.port), PONG_CHECK) == "connect timed out after 0.3s"


# -- streaks and verdicts ----------------------------------------------------------------------------


def make_check(spec: HealthCheck = PONG_CHECK) -> tuple[Check, Backends]:
    backends = Backends()
    ep = endpoint(9)
    return Check(ep, backends.state(ep), spec, ["api"]), backends


def test_fall_failures_mark_down_and_rise_successes_mark_up_logging_once(caplog) -> None:
    caplog.set_level(logging.INFO, "passthru.backends")
    check, _ = make_check()
    for _ in range(2):
        check.record("connection refused")
    assert check.state.up
    for _ in range(5):
        check.record("connection refused")
    assert not check.state.up
    check.record(None)
    assert not check.state.up
    for _ in range(4):
        check.record(None)
    assert check.state.up
    assert [r.getMessage() for r in caplog.records] == [
        "backend 127.0.0.1:9 of route api is DOWN: connection refused (3 consecutive failures)",
        "backend 127.0.0.1:9 of route api is UP (health check passed 2 times in a row)",
    ]


def test_a_failed_client_connect_needs_rise_fresh_successes() -> None:
    check, _ = make_check()
    for _ in range(5):
        check.record(None)
    check.state.connect_failed("connection refused", "route api")
    check.record(None)
    assert not check.state.up
    check.record(None)
    assert check.state.up


def test_a_client_connect_does_not_override_a_failing_check() -> None:
    check, _ = make_check()
    for _ in range(3):
        check.record("unexpected reply b'-'")
    check.state.connect_succeeded("route api")
    assert not check.state.up
    check.stop()  # the config no longer checks it: its verdict stops counting
    assert check.state.up


# -- which checks a config wants -----------------------------------------------------------------------


def test_plan_one_check_per_backend_per_spec_and_probes_for_the_rest() -> None:
    text = """\
        listen: 127.0.0.1:1
        routes:
          - name: api
            to: [127.0.0.1:8001, 127.0.0.1:8002]
            health_check: {interval: 1s}
          - name: api2
            to: [127.0.0.1:8002]
            health_check: {interval: 1s}
          - name: plain
            to: [127.0.0.1:8002, 127.0.0.1:8003]
        default: 127.0.0.1:8004
        """
    config = load_config_text(textwrap.dedent(text), "config.yaml")
    planned = {(str(p.endpoint), p.recover_only): p.routes for p in plan(config).values()}
    assert planned == {
        ("127.0.0.1:8001", False): ["api"],
        ("127.0.0.1:8002", False): ["api", "api2"],  # shared: same backend, same spec
        ("127.0.0.1:8003", True): ["plain"],
        ("127.0.0.1:8004", True): ["default"],
    }


# -- greenlets ------------------------------------------------------------------------------------------


def test_monitor_runs_checks_and_stops_them_on_reload(caplog) -> None:
    caplog.set_level(logging.INFO, "passthru.backends")
    with CheckedServer("a", reply=b"-ERR\r\n") as server:
        text = f"""\
            listen: 127.0.0.1:1
            routes:
              - name: api
                to: [127.0.0.1:{server.port}, 127.0.0.1:{free_port()}]
                health_check: {{interval: 50ms, timeout: 300ms, send: "PING\\r\\n", expect: "+PONG", fall: 2}}
            """
        config = load_config_text(textwrap.dedent(text), "config.yaml")
        backends = Backends()
        monitor = HealthMonitor(backends)
        monitor.apply(config)
        state = backends.state(config.routes[0].to[0])
        try:
            gevent.sleep(0.3)
            assert not state.up
            server.reply = b"+PONG\r\n"
            gevent.sleep(0.3)
            assert state.up
            monitor.apply(load_config_text(textwrap.dedent(text).replace("health_check", "balance: first\n#"), "c"))
            checks = server.checks
            gevent.sleep(0.2)
            assert server.checks == checks  # the config no longer asks for it: not one more check
        finally:
            monitor.stop()
    downs = [r.getMessage() for r in caplog.records if "is DOWN" in r.getMessage()]
    assert len([d for d in downs if f":{server.port} " in d]) == 1


# -- dialing ----------------------------------------------------------------------------------------------


def test_dial_any_fails_over_and_marks_down(caplog) -> None:
    with CheckedServer("live") as live:
        dead = free_port()
        pool = f"[127.0.0.1:{dead}, {live.address}]"
        text = f"listen: 127.0.0.1:1\nroutes:\n  - {{name: api, to: {pool}, balance: first}}"
        route = load_config_text(text, "c").routes[0]
        backends = Backends()
        balancer = Balancer(route, backends)
        failures = []
        sock, chosen = dial_any(balancer, "192.0.2.1", 1.0, on_failure=lambda e, exc: failures.append(str(e)))
        sock.close()
        assert str(chosen) == live.address
        assert failures == [f"127.0.0.1:{dead}"]
        assert [str(e) for e in balancer.order("x")] == [live.address, f"127.0.0.1:{dead}"]
        assert backends.state(chosen).active == 1
        balancer.release(chosen)
        assert backends.state(chosen).active == 0


def test_dial_any_tries_everything_and_says_how_each_failed() -> None:
    with Blackhole() as hole:
        dead = free_port()
        route = load_config_text(
            f"listen: 127.0.0.1:1\nroutes:\n  - {{name: api, to: [{hole.address}, 127.0.0.1:{dead}]}}\n", "c"
        ).routes[0]
        with pytest.raises(UpstreamUnavailable) as info:
            dial_any(Balancer(route, Backends()), "192.0.2.1", 0.2)
        assert sorted(reason for _, reason in info.value.attempts) == ["Connection refused", "connect timed out"]
