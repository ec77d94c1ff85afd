"""Transparent mode end to end: ``passthru run`` in its own network namespace, between a client
namespace and a backend namespace (see ``netns.py``), with a backend that answers with the
address it sees. A ``transparent: true`` route must show the client's address, a plain route
the proxy's; without the privilege, or without return routing, the connection fails with a
log line that says why.

Needs root (creating namespaces needs CAP_SYS_ADMIN) and iproute2; skipped, with the reason,
where either is missing or namespaces are not allowed. All traffic stays inside the namespaces.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.passthru_process import REPO, PassthruProcess
from tests.transparent.netns import BACKEND, CLIENT, PROXY_BACKEND_SIDE, PROXY_CLIENT_SIDE, Topology, Unavailable

PEERS = Path(__file__).resolve().parent / "peers.py"
LISTEN_PORT = 8443  # inside fresh namespaces: nothing else listens there
BACKEND_PORT = 9000
BANNER = "SSH-2.0-x\r\n"

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent mode (IP_TRANSPARENT) is Linux only"),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="creating network namespaces needs root (CAP_SYS_ADMIN); run the suite as root"
    ),
]


def bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Lab:
    """One topology with the processes the test starts in it; ``close`` ends them all."""

    def __init__(self, topology: Topology, workdir: Path) -> None:
        self.net = topology
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []  # the backends
        self.passthru: PassthruProcess | None = None

    def start_backends(self) -> None:
        """The answering backend on both of the backend namespace's addresses."""
        for version in (4, 6):
            argv = [*self.net.prefix(self.net.backend), sys.executable, str(PEERS), "backend"]
            process = subprocess.Popen(
                [*argv, BACKEND[version], str(BACKEND_PORT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            self.processes.append(process)
            ready, _, _ = select.select([process.stdout], [], [], 10)
            line = process.stdout.readline() if ready else b""
            assert line.strip() == b"ready", f"backend on {BACKEND[version]} did not start: {line!r}"

    def start_passthru(self, routes: str, *, connect_timeout: str = "2s", unprivileged: bool = False) -> None:
        """``passthru run`` inside the proxy namespace, listening on its client-side addresses."""
        listens = [f'"{bracketed(PROXY_CLIENT_SIDE[v])}:{LISTEN_PORT}"' for v in (4, 6)]
        config = (
            "listen: [" + ", ".join(listens) + "]\n"
            f"timeouts:\n  identify: 2s\n  connect: {connect_timeout}\n  idle: 30s\n"
            f"routes:\n{routes}"
        )
        drop = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups") if unprivileged else ()
        env = {"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        self.passthru = PassthruProcess(
            self.workdir, config, [], wrapper=(*self.net.prefix(self.net.proxy), *drop), env=env
        )
        self.passthru.config_path.chmod(0o644)
        self.passthru.start()
        for version in (4, 6):
            self.wait_for_log(f"listening on {bracketed(PROXY_CLIENT_SIDE[version])}:{LISTEN_PORT}")

    def logs(self) -> str:
        return self.passthru.logs() if self.passthru is not None else ""

    def wait_for_log(self, needle: str) -> str:
        assert self.passthru is not None
        return self.passthru.wait_for_log(needle)

    def connect(self, version: int) -> dict:
        """A client in the client namespace sends an SSH banner through Passthru."""
        argv = [*self.net.prefix(self.net.client), sys.executable, str(PEERS), "client"]
        done = subprocess.run(
            [*argv, PROXY_CLIENT_SIDE[version], str(LISTEN_PORT)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result.get("local") == CLIENT[version], result
        return result

    def backend_saw(self, version: int) -> dict:
        result = self.connect(version)
        assert result.get("reply"), f"no answer through Passthru: {result}\n{self.logs()}"
        return json.loads(result["reply"])

    def close(self) -> None:
        """End the backends, then stop Passthru (checking it exits cleanly, with no traceback)."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self.passthru is not None:
            self.passthru.stop()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """World-readable, unlike pytest's tmp_path: the unprivileged run reads its config here."""
    path = Path(tempfile.mkdtemp(prefix="passthru-transparent-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def lab(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Lab]:
    """The namespaces (return routing: the indirect parameter, ``policy`` by default) and the
    backends; namespaces and processes are removed whatever happens."""
    mode = getattr(request, "param", "policy")
    topology = Topology()
    lab = Lab(topology, workdir)
    try:
        try:
            topology.create(mode)
        except Unavailable as exc:
            pytest.skip(str(exc))
        lab.start_backends()
        yield lab
    finally:
        try:
            lab.close()
        finally:
            topology.destroy()


def route(versions: list[int], *, transparent: bool | None, extra: str = "") -> str:
    """The route under test: SSH to the backend's address of each IP version in ``versions``."""
    to = ", ".join(f'"{bracketed(BACKEND[v])}:{BACKEND_PORT}"' for v in versions)
    text = f"  - name: ssh\n    match: {{protocol: ssh}}\n    to: [{to}]\n"
    if transparent is not None:
        text += f"    transparent: {'true' if transparent else 'false'}\n"
    return text + extra


@pytest.mark.parametrize("lab", ["policy", "nftables"], indirect=True)
@pytest.mark.parametrize("version", [4, 6])
def test_transparent_route_backend_sees_the_client_address(lab: Lab, version: int) -> None:
    lab.start_passthru(route([version], transparent=True))
    seen = lab.backend_saw(version)
    assert seen["peer"] == CLIENT[version]  # not the proxy's PROXY_BACKEND_SIDE address
    assert seen["first"] == BANNER  # the identified prefix went first, unchanged
    lab.wait_for_log(f"upstream={bracketed(BACKEND[version])}:{BACKEND_PORT}")


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("transparent", [False, None], ids=["false", "absent"])
def test_plain_route_backend_sees_the_proxy_address(lab: Lab, version: int, transparent: bool | None) -> None:
    lab.start_passthru(route([version], transparent=transparent))
    seen = lab.backend_saw(version)
    assert seen["peer"] == PROXY_BACKEND_SIDE[version]
    assert seen["first"] == BANNER


def test_pool_of_both_families_serves_each_client_from_its_own_address(lab: Lab) -> None:
    """A client's address can only reach a backend of its family: the other family's backend is
    skipped for that connection (as sslh does), and not marked down for it."""
    lab.start_passthru(route([4, 6], transparent=True, extra="    balance: first\n"))
    assert lab.backend_saw(6)["peer"] == CLIENT[6]  # tried the IPv4 backend first, then IPv6
    assert lab.backend_saw(4)["peer"] == CLIENT[4]  # the IPv4 backend is still first and up
    log = lab.logs()
    assert "is DOWN" not in log, log


@pytest.mark.parametrize("lab", ["none"], indirect=True)
def test_without_return_routing_the_connect_times_out_and_the_log_says_why(lab: Lab) -> None:
    """The backend's SYN-ACK to the client address is forwarded to the client, which never
    opened that connection: Passthru's connect times out, and the log points at the routing."""
    lab.start_passthru(route([4], transparent=True), connect_timeout="1s")
    result = lab.connect(4)
    assert result.get("reply") == "", result  # closed in order, nothing sent
    log = lab.wait_for_log("end=upstream_unavailable")
    assert "routed back to this host?" in log and CLIENT[4] in log, log


def start_unprivileged(lab: Lab) -> None:
    """Passthru as user nobody (no capabilities) with a transparent route."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run Passthru unprivileged")
    probe = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", "import passthru"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd="/",
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run this interpreter and import passthru: {probe.stderr.strip()[-200:]}")
    lab.start_passthru(route([4], transparent=True), unprivileged=True)


def test_unprivileged_connection_is_closed_with_a_clear_error(lab: Lab) -> None:
    """Without CAP_NET_ADMIN each connection of the route is closed (nothing sent) with the
    reason in its log line; the backend is not marked down for a problem of this host."""
    start_unprivileged(lab)
    result = lab.connect(4)
    assert result.get("reply") == "", result
    log = lab.wait_for_log("end=upstream_unavailable")
    assert "setting IP_TRANSPARENT failed (Operation not permitted)" in log, log
    assert f"from the client's address {CLIENT[4]}" in log, log
    assert "is DOWN" not in log, log


def test_unprivileged_start_up_logs_one_error_naming_the_route(lab: Lab) -> None:
    """The missing privilege is found at start-up (``upstream.check_transparent``), before any
    client connects: one ERROR naming the route and what to do."""
    start_unprivileged(lab)
    startup = lab.wait_for_log("may not open transparent sockets")
    line = next(line for line in startup.splitlines() if "may not open transparent sockets" in line)
    assert " ERROR " in line and "route ssh: transparent: true" in line and "CAP_NET_ADMIN" in line, line
