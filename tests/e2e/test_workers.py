"""``workers: N``: N processes share the listen port (SO_REUSEPORT); a dead worker is replaced."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from tests.hardening.helpers import wait_serving, worker_pids
from tests.support.backends import TagServer
from tests.support.net import exchange, free_port
from tests.support.passthru_process import PassthruProcess
from tests.support.waiting import wait_until

BANNER = b"SSH-2.0-workers\r\n"


def test_two_workers_share_the_port_and_a_killed_worker_is_restarted(tmp_path: Path) -> None:
    port = free_port()
    with TagServer("ssh") as ssh:
        config = f"""listen: [127.0.0.1:{port}]
workers: 2
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: {ssh.address}
"""
        with PassthruProcess(tmp_path, config, [("127.0.0.1", port)]) as proc:
            wait_serving(proc, 2)
            pids = worker_pids(proc.logs())
            assert sorted(pids) == [0, 1]
            for _ in range(40):
                assert exchange(port, BANNER) == b"[ssh]" + BANNER
            wait_until(lambda: len(re.findall(r"conn=\d+-\d+ ", proc.logs())) >= 40)  # lines come in batches
            served_by = set(re.findall(r"conn=(\d+)-\d+ ", proc.logs()))
            assert served_by == {"0", "1"}, "both workers accept connections"

            os.kill(pids[0], signal.SIGKILL)
            proc.wait_for_log(f"worker 0 (pid {pids[0]}) killed by SIGKILL; restarting")
            wait_until(lambda: worker_pids(proc.logs())[0] != pids[0])
            time.sleep(0.5)
            for _ in range(20):
                assert exchange(port, BANNER) == b"[ssh]" + BANNER
            assert os.path.exists(f"/proc/{pids[1]}"), "the other worker went on"
        assert proc.process.returncode == 0
        assert "all workers stopped" in proc.logs()
