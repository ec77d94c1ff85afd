"""Two network namespaces joined by the faulty link of ``netem.py``::

     pf-client-<id>                                   pf-server-<id>
     10.98.0.1 ── pfc<id> (TUN) ══ relay ══ (TUN) pfs<id> ── 10.98.0.2

Both namespaces are created by the test and always deleted; the addresses exist only in them.
The test process stays in its own namespace and creates its sockets in the others with
``netem.inside`` (a socket belongs to the namespace it was created in)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys

from tests.faults.netem import inside
from tests.support.passthru_process import REPO

CLIENT, SERVER = "10.98.0.1", "10.98.0.2"

__all__ = ["CLIENT", "SERVER", "FaultyLink", "Unavailable", "inside"]


class Unavailable(Exception):
    """This machine cannot build the link (no root, no namespaces, no TUN)."""


def ip(*argv: str) -> None:
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)} failed: {done.stderr.strip()}")


class FaultyLink:
    """``with FaultyLink() as link:`` the namespaces ``link.client`` and ``link.server``, joined
    through the fault relay; ``link.report`` holds the relay's counters after the block."""

    def __init__(self) -> None:
        token = secrets.token_hex(3)
        self.client, self.server = f"pf-client-{token}", f"pf-server-{token}"
        self.client_if, self.server_if = f"pfc{token}", f"pfs{token}"
        self.created: list[str] = []
        self.relay: subprocess.Popen | None = None
        self.report: dict[str, dict[str, int]] = {}

    def __enter__(self) -> FaultyLink:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def build(self) -> None:
        if shutil.which("ip") is None:
            raise Unavailable("iproute2's 'ip' command is not installed (apt-get install iproute2)")
        for name in (self.client, self.server):
            done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise Unavailable(f"'ip netns add' is not allowed here: {done.stderr.strip()} (needs CAP_SYS_ADMIN)")
            self.created.append(name)
        argv = [sys.executable, "-m", "tests.faults.netem", "--client-ns", self.client, "--client-if"]
        argv += [self.client_if, "--server-ns", self.server, "--server-if", self.server_if]
        self.relay = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.relay.stdout is not None
        ready = self.relay.stdout.readline()
        if ready.strip() != "ready":
            self.relay.wait(timeout=10)
            raise Unavailable(f"the fault relay cannot create TUN devices here: {self.relay.stderr.read().strip()}")
        for ns, interface, local, peer in (
            (self.client, self.client_if, CLIENT, SERVER),
            (self.server, self.server_if, SERVER, CLIENT),
        ):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", local, "peer", peer, "dev", interface)
            ip("-n", ns, "link", "set", interface, "up")

    def exec_prefix(self, ns: str) -> tuple[str, ...]:
        """The argv prefix that runs a program in namespace ``ns``."""
        return ("ip", "netns", "exec", ns)

    def close(self) -> None:
        if self.relay is not None and self.relay.poll() is None:
            self.relay.terminate()
            out, err = self.relay.communicate(timeout=30)
            lines = out.strip().splitlines()
            assert self.relay.returncode == 0 and lines, f"the fault relay failed: {err}"
            self.report = json.loads(lines[-1])
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.created.clear()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """The relay's counters, one phrase per direction."""
        parts = []
        for direction, counts in self.report.items():
            parts.append(
                f"{direction.replace('_', ' ')}: {counts.get('packets', 0)} packets, lost {counts.get('lost', 0)}, "
                f"queue-dropped {counts.get('queue_full', 0)}, reordered {counts.get('reordered', 0)}, "
                f"duplicated {counts.get('duplicated', 0)}"
            )
        return "; ".join(parts)
