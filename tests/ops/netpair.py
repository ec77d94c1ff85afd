"""Two network namespaces joined by a veth pair: a server side (10.77.x.1) and a client side
(10.77.x.2), so a test has a real client address that is not loopback, with no traffic leaving
namespaces the test created."""

from __future__ import annotations

import secrets
import shutil
import subprocess

import pytest


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


class NetPair:
    def __init__(self) -> None:
        token = secrets.token_hex(3)
        self.server, self.client = f"pt-srv-{token}", f"pt-cli-{token}"
        self.subnet = int(token[:2], 16)
        self.server_ip, self.client_ip = f"10.77.{self.subnet}.1", f"10.77.{self.subnet}.2"
        self.created: list[str] = []

    def create(self) -> NetPair:
        if shutil.which("ip") is None:
            pytest.skip("iproute2's 'ip' is not installed (.ci/apt-packages.txt has it)")
        for ns in (self.server, self.client):
            if run("ip", "netns", "add", ns, check=False).returncode != 0:
                self.destroy()
                pytest.skip("creating network namespaces needs CAP_SYS_ADMIN")
            self.created.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run(
            "ip",
            "link",
            "add",
            "ptsrv0",
            "netns",
            self.server,
            "type",
            "veth",
            "peer",
            "name",
            "ptcli0",
            "netns",
            self.client,
        )
        ends = ((self.server, "ptsrv0", self.server_ip), (self.client, "ptcli0", self.client_ip))
        for ns, interface, address in ends:
            run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", interface)
            run("ip", "-n", ns, "link", "set", interface, "up")
        return self

    def prefix(self, ns: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", ns)

    def destroy(self) -> None:
        for ns in self.created:
            run("ip", "netns", "delete", ns, check=False)
        self.created.clear()
