"""Dialing from the client's address, without namespaces: which source is bound, what a missing
privilege looks like (at start-up and per connection), and that it never marks a backend down.

The unprivileged cases run in a subprocess as user ``nobody`` (``setpriv``) when the suite runs
as root, or directly when it does not. They fail at ``setsockopt(IP_TRANSPARENT)``, before any
packet is sent: the made-up client address (192.0.2.0/24, TEST-NET-1) never reaches a wire.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from passthru.config import Route
from passthru.config.addresses import parse_endpoint
from passthru.server import upstream
from passthru.server.backends import Backends
from passthru.server.upstream import (
    Balancer,
    SourceAddressError,
    UpstreamUnavailable,
    check_transparent,
    dial,
    dial_any,
    transparent_source,
)

REPO = Path(__file__).resolve().parents[2]
V4 = parse_endpoint("127.0.0.1:9")
V6 = parse_endpoint("[::1]:9")


def transparent_route(*addresses: str, name: str = "ssh") -> Route:
    return Route(name, "ssh", {}, tuple(parse_endpoint(a) for a in addresses), transparent=True)


# -- the source address ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "endpoint", "source"),
    [
        ("192.0.2.10", V4, "192.0.2.10"),
        ("::ffff:192.0.2.10", V4, "192.0.2.10"),  # an IPv4 client on a dual-stack [::] listener
        ("2001:db8::7", V6, "2001:db8::7"),
        ("127.0.0.1", V4, None),  # loopback: dialled from our own address, as sslh does
        ("127.8.9.10", V4, None),
        ("::1", V6, None),
        ("::ffff:127.0.0.1", V4, None),
    ],
)
def test_source_is_the_client_address_except_loopback(client: str, endpoint, source: str | None) -> None:
    assert transparent_source(endpoint, client) == source


@pytest.mark.parametrize(
    ("client", "endpoint", "words"),
    [
        ("192.0.2.10", V6, "the client 192.0.2.10 is IPv4 but backend [::1]:9 is IPv6"),
        ("2001:db8::7", V4, "the client 2001:db8::7 is IPv6 but backend 127.0.0.1:9 is IPv4"),
        ("not-an-address", V4, "'not-an-address' is not an IP address"),
    ],
)
def test_a_source_the_backend_cannot_see_is_a_clear_error(client: str, endpoint, words: str) -> None:
    with pytest.raises(SourceAddressError) as info:
        transparent_source(endpoint, client)
    assert words in str(info.value)


def test_a_loopback_client_is_dialled_normally() -> None:
    """No privilege needed: nothing transparent happens for a client on this host's loopback."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        endpoint = parse_endpoint(f"127.0.0.1:{server.getsockname()[1]}")
        sock = dial(endpoint, 2.0, source=("127.0.0.1", 40000))
        try:
            accepted, peer = server.accept()
            accepted.close()
            assert peer[0] == "127.0.0.1"
            assert sock.getsockopt(socket.SOL_IP, upstream.IP_TRANSPARENT) == 0
        finally:
            sock.close()


# -- dial_any: a problem of this host does not mark the backend down ----------------------------


def fake_dial(error: OSError):
    def dial(endpoint, timeout, source=None):
        assert source == ("192.0.2.10", 40000)
        raise error

    return dial


def test_source_failure_is_reported_and_does_not_mark_the_backend_down(monkeypatch: pytest.MonkeyPatch) -> None:
    error = SourceAddressError("transparent: cannot connect from the client's address 192.0.2.10: ...")
    monkeypatch.setattr(upstream, "dial", fake_dial(error))
    backends = Backends()
    balancer = Balancer(transparent_route("127.0.0.1:9", "127.0.0.1:10"), backends)
    failures = []
    with pytest.raises(UpstreamUnavailable) as info:
        dial_any(balancer, "192.0.2.10", 1.0, lambda e, exc: failures.append(exc), source=("192.0.2.10", 40000))
    assert [reason for _, reason in info.value.attempts] == [str(error)] * 2  # every backend tried
    assert failures == [error, error]  # counted as failed attempts
    assert all(backends.state(e).up for e in balancer.route.to)


def test_transparent_timeout_hints_at_the_return_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "dial", fake_dial(TimeoutError("timed out")))
    balancer = Balancer(transparent_route("127.0.0.1:9"), Backends())
    with pytest.raises(UpstreamUnavailable) as info:
        dial_any(balancer, "192.0.2.10", 1.0, source=("192.0.2.10", 40000))
    assert str(info.value) == (
        "127.0.0.1:9: connect timed out "
        "(transparent: are the backend's replies to 192.0.2.10 routed back to this host?)"
    )
    assert not balancer.members[0].state.up  # a timeout still says nothing good about the backend


# -- the start-up check --------------------------------------------------------------------------


def test_no_transparent_route_no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "transparent_unavailable", lambda families: pytest.fail("probed"))
    assert check_transparent([Route("plain", None, {}, (V4,))]) is None


def test_missing_privilege_is_one_error_naming_the_routes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Simulated: the kernel refuses IP_TRANSPARENT as it does without CAP_NET_ADMIN."""

    def refuse(sock, family):
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(upstream, "set_transparent", refuse)
    routes = [
        transparent_route("127.0.0.1:9"),
        Route("plain", None, {}, (V4,)),
        transparent_route("[::1]:9", name="v6"),
    ]
    with caplog.at_level(logging.ERROR, logger="passthru.server"):
        message = check_transparent(routes)
    assert message == (
        "routes ssh, v6: transparent: true, but their connections will fail: "
        "this process may not open transparent sockets (setting IP_TRANSPARENT failed: Operation not permitted); "
        "transparent routes need CAP_NET_ADMIN: "
        "run Passthru as root without user:, or give it the capability (systemd AmbientCapabilities=CAP_NET_ADMIN)"
    )
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [message]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root (CAP_NET_ADMIN) may open transparent sockets")
def test_root_passes_the_check() -> None:
    assert check_transparent([transparent_route("127.0.0.1:9", "[::1]:9")]) is None


def attempt_without_privilege() -> dict:
    """Start-up check and one connection of a transparent route, in a process without the
    privilege (the connect never starts: IP_TRANSPARENT is refused first)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        endpoint = parse_endpoint(f"127.0.0.1:{server.getsockname()[1]}")
        route = Route("ssh", "ssh", {}, (endpoint,), transparent=True)
        result: dict[str, object] = {"startup": check_transparent([route])}
        backends = Backends()
        try:
            dial_any(Balancer(route, backends), "192.0.2.10", 2.0, source=("192.0.2.10", 40000))
        except UpstreamUnavailable as exc:
            result["connection"] = str(exc)
        result["backend_up"] = backends.state(endpoint).up
    return result


def test_without_the_privilege_start_up_and_each_connection_say_why() -> None:
    """A real unprivileged process: EPERM from the kernel, reported at start-up and per connection.
    As root, a child process run as user nobody; otherwise this very process."""
    if os.geteuid() != 0:
        if upstream.transparent_unavailable() is None:
            pytest.skip("this non-root process has CAP_NET_ADMIN or CAP_NET_RAW: it may open transparent sockets")
        result = attempt_without_privilege()
    else:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is not installed: cannot drop the privilege")
        script = "import json; from tests.transparent.test_upstream import attempt_without_privilege as a; "
        script += "print(json.dumps(a()))"
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", script]
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=60, check=False)
        if done.returncode != 0 and "Permission denied" in done.stderr:
            pytest.skip(f"user nobody cannot run this interpreter or read the tree: {done.stderr.strip()[-200:]}")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
    startup, connection = str(result["startup"]), str(result["connection"])
    assert "may not open transparent sockets (setting IP_TRANSPARENT failed: Operation not permitted)" in startup
    assert "CAP_NET_ADMIN" in startup
    assert connection.endswith(
        "transparent: cannot connect from the client's address 192.0.2.10: setting IP_TRANSPARENT failed "
        "(Operation not permitted); transparent routes need CAP_NET_ADMIN: run Passthru as root without user:, "
        "or give it the capability (systemd AmbientCapabilities=CAP_NET_ADMIN)"
    )
    assert result["backend_up"] is True
