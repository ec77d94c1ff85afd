"""``passthru check`` and the life cycle of ``passthru run``: start-up log, errors, signals."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from tests.support.backends import TagServer
from tests.support.net import exchange, free_port
from tests.support.passthru_process import REPO, PassthruProcess, run_cli


def test_shipped_config_is_valid() -> None:
    result = run_cli("check", "-c", str(REPO / "config.yaml"))
    assert result.returncode == 0, result.stderr.decode()
    assert "OK" in result.stdout.decode()


def test_check_reports_every_error_with_file_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        """listen:
  - 127.0.0.1:notaport
tiemouts:
  identify: 3 parsecs
routes:
  - name: web
    match: {protocol: gopher}
    to: 127.0.0.1:80
  - name: nowhere
    match: {protocol: ssh}
"""
    )
    result = run_cli("check", "-c", str(config))
    assert result.returncode != 0
    errors = result.stderr.decode()
    assert f"{config}:2:5:" in errors  # the bad port
    assert f"{config}:3:1:" in errors and "timeouts" in errors  # unknown key, with the suggestion
    assert f"{config}:7:23:" in errors and "ssh" in errors  # unknown protocol, known ones listed
    assert f"{config}:9:5:" in errors and "'to'" in errors  # route without a destination


def test_run_refuses_an_invalid_config_and_serves_nothing(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("listen: [127.0.0.1:1]\nroutes: []\ntimeouts: {idle: soon}\n")
    result = run_cli("run", "-c", str(config), timeout=20)
    assert result.returncode == 1
    assert f"{config}:3:" in result.stderr.decode()


def test_run_logs_its_setup_listens_on_ipv4_and_ipv6_and_stops_on_sigterm(tmp_path: Path) -> None:
    port4, port6 = free_port(), free_port("::1")
    with TagServer("ssh") as ssh:
        config = f"""listen:
  - 127.0.0.1:{port4}
  - "[::1]:{port6}"
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: {ssh.address}
"""
        proc = PassthruProcess(tmp_path, config, [("127.0.0.1", port4), ("::1", port6)]).start()
        try:
            banner = b"SSH-2.0-OpenSSH_9.2\r\n"
            assert exchange(port4, banner) == b"[ssh]" + banner
            assert exchange(port6, banner, host="::1") == b"[ssh]" + banner
            # a connection still relaying when SIGTERM arrives finishes normally
            open_conn = socket.create_connection(("127.0.0.1", port4))
            open_conn.sendall(banner)
            assert open_conn.recv(100).startswith(b"[ssh]")
            proc.process.send_signal(signal.SIGTERM)
            proc.wait_for_log("SIGTERM received")
            open_conn.sendall(b"last words")
            open_conn.shutdown(socket.SHUT_WR)
            rest = b""
            while chunk := open_conn.recv(100):
                rest += chunk
            assert rest.endswith(b"last words")
            assert proc.process.wait(timeout=10) == 0
        finally:
            proc.stop()
    log = proc.logs()
    assert f"listening on 127.0.0.1:{port4}" in log and f"listening on [::1]:{port6}" in log
    assert "route ssh:" in log and "identifiers: " in log
