"""The container health check (docker/healthcheck.py) against a real Passthru whose only listener
takes PROXY headers and whose ``admin:`` is off: it sends a v2 LOCAL header, which a listener
trusting loopback accepts without an error line; and the ``admin:`` mapping form is followed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.net import free_port
from tests.support.passthru_process import REPO, PassthruProcess

HEALTHCHECK = REPO / "docker" / "healthcheck.py"
CONFIG = """\
listen:
  - {{address: 127.0.0.1:{port}, proxy_protocol: accept, trusted_proxies: [{trusted}]}}
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: 127.0.0.1:{backend}
"""


def check(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), str(config)], capture_output=True, text=True, timeout=30, check=False
    )


def test_proxy_accept_listener_without_admin(tmp_path: Path) -> None:
    port = free_port()
    config = CONFIG.format(port=port, trusted="127.0.0.1/32", backend=free_port())
    proc = PassthruProcess(tmp_path, config, [])
    assert check(proc.config_path).returncode == 1, "unhealthy before it runs"
    with PassthruProcess(tmp_path, config, []) as proc:  # (not probed: that would be a connection too)
        proc.wait_for_log(f"listening on 127.0.0.1:{port}")
        result = check(proc.config_path)
        assert result.returncode == 0, result.stderr
        text = proc.wait_for_log("end=client_closed")
    assert text.count(" end=") == 1
    assert "proxy_protocol_error" not in text  # the LOCAL header was accepted: a clean check


def test_admin_mapping_form_is_followed(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    config = CONFIG.format(port=port, trusted="127.0.0.1/32", backend=free_port())
    config += f"admin: {{address: 127.0.0.1:{admin}, allow: [10.0.0.0/8]}}\n"
    with PassthruProcess(tmp_path, config, [("127.0.0.1", admin)]) as proc:
        assert check(proc.config_path).returncode == 0
        assert "conn=" not in proc.logs()  # /healthz asked, no connection made to the listener
