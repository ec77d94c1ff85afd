"""Who may read the status: ``/`` and ``/status.json`` answer loopback, ``admin.allow`` networks,
and (with ``admin.token_file``) only holders of the token; 403/401 bodies say nothing of the
status; ``/metrics``, ``/healthz`` and ``/readyz`` are unchanged. Passthru runs in a network
namespace and real ``curl`` asks from inside it (loopback) and from a second namespace (10.77.x.2)."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.netpair import NetPair, run
from tests.support.passthru_process import PassthruProcess

TOKEN = "correct-horse-battery-staple-42"
SECRET_ROUTE = "secret-route-name"

CONFIG = """\
listen: [127.0.0.1:8443]
admin: {admin}
routes:
  - name: secret-route-name
    match: {{protocol: ssh}}
    to: 127.0.0.1:22
"""


@pytest.fixture(scope="module")
def pair() -> Iterator[NetPair]:
    made = NetPair().create()
    yield made
    made.destroy()


def curl(pair: NetPair, ns: str, host: str, path: str, *headers: str) -> tuple[int, dict[str, str], str]:
    argv = [*pair.prefix(ns), "curl", "-s", "--noproxy", "*", "-m", "5", "-D", "-", "-o", "-"]
    for header in headers:
        argv += ["-H", header]
    done = run(*argv, f"http://{host}:9901{path}", check=False)
    head, _, body = done.stdout.partition("\n\n")  # text mode: curl's CRLFs read as LFs
    lines = head.split("\n")
    if not lines[0].startswith("HTTP/"):
        return 0, {}, done.stderr
    found = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in found.items()}, body


@contextlib.contextmanager
def serving(pair: NetPair, tmp_path: Path, admin: str) -> Iterator[PassthruProcess]:
    """Passthru in the server namespace, ready (its listeners are there, checked from inside)."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    with PassthruProcess(tmp_path, CONFIG.format(admin=admin), [], wrapper=pair.prefix(pair.server)) as proc:
        deadline = time.monotonic() + 15
        while curl(pair, pair.server, "127.0.0.1", "/readyz")[0] != 200:
            assert time.monotonic() < deadline, f"passthru did not start:\n{proc.logs()}"
            time.sleep(0.1)
        yield proc


def assert_refused(answer: tuple[int, dict[str, str], str], code: int) -> None:
    status, _headers, body = answer
    assert status == code, answer
    assert SECRET_ROUTE not in body and "127.0.0.1:22" not in body and "{" not in body


def test_loopback_only_by_default(pair: NetPair, tmp_path: Path) -> None:
    with serving(pair, tmp_path, "{address: 0.0.0.0:9901}"):
        status, _, body = curl(pair, pair.server, "127.0.0.1", "/status.json")
        assert status == 200 and SECRET_ROUTE in body
        assert curl(pair, pair.server, "127.0.0.1", "/")[0] == 200
        for path in ("/status.json", "/"):
            assert_refused(curl(pair, pair.client, pair.server_ip, path), 403)
        # the rest is as before: open to whoever reaches the port
        assert curl(pair, pair.client, pair.server_ip, "/healthz")[:1] == (200,)
        assert curl(pair, pair.client, pair.server_ip, "/readyz")[0] == 200
        status, _, metrics = curl(pair, pair.client, pair.server_ip, "/metrics")
        assert status == 200 and "passthru_serving_processes" in metrics


def test_plain_address_form_is_loopback_only_too(pair: NetPair, tmp_path: Path) -> None:
    with serving(pair, tmp_path, "0.0.0.0:9901"):
        assert curl(pair, pair.server, "127.0.0.1", "/status.json")[0] == 200
        assert_refused(curl(pair, pair.client, pair.server_ip, "/status.json"), 403)


def test_allowed_network(pair: NetPair, tmp_path: Path) -> None:
    with serving(pair, tmp_path, f"{{address: 0.0.0.0:9901, allow: [10.77.{pair.subnet}.0/24]}}"):
        status, _, body = curl(pair, pair.client, pair.server_ip, "/status.json")
        assert status == 200 and SECRET_ROUTE in body
        assert curl(pair, pair.client, pair.server_ip, "/")[0] == 200


def test_token_required_from_everyone(pair: NetPair, tmp_path: Path) -> None:
    with serving(pair, tmp_path, "{address: 0.0.0.0:9901, token_file: token}"):
        refused = curl(pair, pair.client, pair.server_ip, "/status.json")
        assert_refused(refused, 401)
        assert refused[1]["www-authenticate"].startswith("Basic ")
        assert_refused(curl(pair, pair.client, pair.server_ip, "/", "Authorization: Bearer wrong-token"), 401)
        assert_refused(curl(pair, pair.server, "127.0.0.1", "/status.json"), 401)  # loopback too
        status, _, body = curl(pair, pair.client, pair.server_ip, "/status.json", f"Authorization: Bearer {TOKEN}")
        assert status == 200 and SECRET_ROUTE in body
        basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
        assert curl(pair, pair.client, pair.server_ip, "/", f"Authorization: Basic {basic}")[0] == 200
        assert curl(pair, pair.client, pair.server_ip, "/metrics")[0] == 200


def test_token_does_not_open_a_network_outside_allow(pair: NetPair, tmp_path: Path) -> None:
    with serving(pair, tmp_path, "{address: 0.0.0.0:9901, allow: [192.0.2.0/24], token_file: token}"):
        assert_refused(curl(pair, pair.client, pair.server_ip, "/status.json", f"Authorization: Bearer {TOKEN}"), 403)
        assert curl(pair, pair.server, "127.0.0.1", "/status.json", f"Authorization: Bearer {TOKEN}")[0] == 200
