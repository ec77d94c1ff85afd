"""``user:``/``group:``: bind (a privileged port too), then serve as the unprivileged user."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.backends import TagServer
from tests.support.net import exchange, free_port
from tests.support.passthru_process import PassthruProcess
from tests.support.waiting import PATIENCE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


def free_privileged_port() -> int:
    for port in range(1023, 900, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024 on 127.0.0.1")


def uids(pid: int) -> tuple[int, ...]:
    status = Path(f"/proc/{pid}/status").read_text()
    return tuple(int(x) for x in re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE).group(1).split())


@pytest.mark.parametrize("workers", [1, 2])
def test_binds_as_root_then_serves_as_nobody(workers: int) -> None:
    port = free_privileged_port()
    tmp_path = Path(tempfile.mkdtemp(prefix="passthru-privileges-"))  # readable by nobody, unlike pytest's
    tmp_path.chmod(0o755)
    with TagServer("ssh") as ssh:
        config = f"""listen: [127.0.0.1:{port}]
workers: {workers}
user: nobody
admin: 127.0.0.1:{free_port()}
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: {ssh.address}
"""
        (tmp_path / "config.yaml").write_text(config)
        (tmp_path / "config.yaml").chmod(0o644)
        with PassthruProcess(tmp_path, config, [("127.0.0.1", port)]) as proc:
            banner = b"SSH-2.0-privileges\r\n"
            assert exchange(port, banner) == b"[ssh]" + banner
            log = proc.wait_for_log("dropped privileges to uid")
            nobody = int(re.search(r"dropped privileges to uid (\d+)", log).group(1))
            assert nobody != 0
            serving = [int(p) for p in re.findall(r"worker \d+ started \(pid (\d+)\)", log)] or [proc.process.pid]
            deadline = time.monotonic() + PATIENCE
            while time.monotonic() < deadline and not all(uids(pid)[:2] == (nobody, nobody) for pid in serving):
                time.sleep(0.1)
            for pid in serving:
                assert uids(pid) == (nobody,) * 4, f"pid {pid} still has uids {uids(pid)}"
            assert exchange(port, banner) == b"[ssh]" + banner
    shutil.rmtree(tmp_path, ignore_errors=True)
