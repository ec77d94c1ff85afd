"""``/status.json`` of a running Passthru with two workers, checked against what real connections,
a broken identifier file and a broken config did; and ``passthru status`` reading it."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

from tests.ops.instance import HTTP_REQUEST, IDENTIFIER, SSH_HELLO, identifier, route, running
from tests.support.net import free_port
from tests.support.passthru_process import run_cli

KEYS = {"routes", "identifiers", "reload", "workers", "connections"}


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_status_follows_what_happens(tmp_path: Path) -> None:
    with running(tmp_path) as inst:
        status = inst.status()
        assert set(status) >= KEYS
        assert [r["name"] for r in status["routes"]] == ["ssh", "web", "zqx"]
        assert route(status, "ssh")["protocol"] == "ssh"
        assert [b["address"] for b in route(status, "ssh")["backends"]] == [inst.backend.address]
        assert inst.proc.process is not None
        assert {w["pid"] for w in status["workers"]} == children(inst.proc.process.pid)
        assert all(time.time() - 60 < w["started"] <= time.time() for w in status["workers"])
        zqx = identifier(status, "zqx")
        assert zqx["source"] == "file" and zqx["status"] == "active" and not zqx["disabled"]
        assert zqx["version"] == hashlib.sha256(IDENTIFIER.encode()).hexdigest()[:12]
        assert identifier(status, "tls")["source"] == "built-in"
        assert status["reload"]["ok"] is True and status["reload"]["error"] is None
        # the start-up probe's connection is counted once its batch is applied (within 0.2 s)
        before = inst.wait_status(lambda s: s["connections"]["total"] >= 1)["connections"]["total"]

        # a relayed connection is open on its route while it lasts
        with socket.create_connection(("127.0.0.1", inst.port), timeout=10) as held:
            held.sendall(SSH_HELLO)
            assert held.recv(5) == b"[ssh]"
            # (backends' open counts come from the workers' status files: up to half a second later)
            status = inst.wait_status(lambda s: route(s, "ssh")["open"] == 1 and route(s, "ssh")["backends"][0]["open"])
            assert status["connections"]["open"] >= 1
            assert route(status, "ssh")["backends"][0]["open"] == 1
            assert {p["name"]: p["open"] for p in status["protocols"]}.get("ssh") == 1
        status = inst.wait_status(lambda s: route(s, "ssh")["open"] == 0 and route(s, "ssh")["total"] == 1)
        assert {p["name"]: p["open"] for p in status["protocols"]}["ssh"] == 0

        # a refusing backend is down, with why and its failures
        assert inst.send(HTTP_REQUEST) == b""
        assert inst.send(b"\x07\x07 nobody knows this") == b""
        status = inst.wait_status(lambda s: not route(s, "web")["backends"][0]["up"])
        web = route(status, "web")["backends"][0]
        assert web["failures"] >= 1 and web["recent_failures"] >= 1 and web["down_workers"] == 1
        assert "refused" in web["why"]
        assert status["unmatched"] == 1
        assert status["connections"]["total"] == before + 3
        assert {p["name"] for p in status["protocols"]} >= {"ssh", "http"}
        assert status["identify"]["count"] >= 3 and sum(b["count"] for b in status["identify"]["buckets"]) >= 3

        # a broken identifier file: its error, counted once per worker; the old version serves
        (inst.directory / "identifiers" / "zqx.py").write_text(IDENTIFIER.replace("def identify", "def identify(:"))
        status = inst.wait_status(lambda s: identifier(s, "zqx")["errors"] == 2 and identifier(s, "zqx")["error"])
        # (the text and state come from the workers' status files, the count from the metrics)
        zqx = identifier(status, "zqx")
        assert zqx["status"] == "rejected" and zqx["serving"] is True
        assert "zqx.py:3" in zqx["error"] and "SyntaxError" in zqx["error"]

        # a broken config: the reload is rejected, with file:line:column; the old routes serve on
        config = inst.proc.config_path
        good = config.read_text()
        config.write_text(good.replace("balance", "x").replace("default: reject", "default: rejekt"))
        status = inst.wait_status(lambda s: s["reload"]["ok"] is False)
        assert f"{config}:" in status["reload"]["error"] and "rejekt" in status["reload"]["error"]
        assert [r["name"] for r in status["routes"]] == ["ssh", "web", "zqx"]
        inst.ssh()
        config.write_text(good.replace("name: zqx", "name: zqx2"))
        status = inst.wait_status(lambda s: s["reload"]["ok"] is True and s["routes"][-1]["name"] == "zqx2")

        # passthru status: the same, as a table and as JSON
        table = run_cli("status", "-c", str(config))
        out = table.stdout.decode()
        assert table.returncode == 0, table.stderr.decode()
        assert "ROUTE" in out and "zqx2" in out and "DOWN" in out and inst.backend.address in out
        assert "zqx.py:3" in out and "WORKER" in out
        as_json = run_cli("status", "-c", str(config), "--json")
        assert as_json.returncode == 0
        assert set(json.loads(as_json.stdout)) >= KEYS


def test_status_command_without_a_server(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"listen: 127.0.0.1:1\nadmin: 127.0.0.1:{free_port()}\nroutes: []\n")
    result = run_cli("status", "-c", str(config))
    assert result.returncode == 1
    assert "Passthru is not answering at http://127.0.0.1:" in result.stderr.decode()
    assert "Connection refused" in result.stderr.decode()

    config.write_text("listen: 127.0.0.1:1\nroutes: []\n")
    result = run_cli("status", "-c", str(config))
    assert result.returncode == 2
    assert "admin: is off" in result.stderr.decode()

    result = run_cli("status", "-c", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr.decode()


def test_version_and_help() -> None:
    from passthru import __version__

    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.decode().strip() == f"passthru {__version__}"
    help_text = run_cli("--help").stdout.decode()
    assert "status" in help_text and "forwards the whole connection" in help_text
    for command in ("run", "check", "identify", "route", "config", "identifiers", "status"):
        help_text += run_cli(command, "--help").stdout.decode()
    for marker in ("``", "passthru/", ":class:", "passthru.commands", "Namespace"):
        assert marker not in help_text
