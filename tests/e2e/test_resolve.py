"""Backend names are looked up again in the background (``timeouts.resolve``), never per
connection; a failed lookup keeps the last good address."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from passthru.config import load_config_text
from passthru.server.resolver import Resolver
from tests.support.backends import TagServer
from tests.support.net import exchange, free_port
from tests.support.passthru_process import PassthruProcess
from tests.support.waiting import wait_until

HOSTS = Path("/etc/hosts")
NAME = "passthru-resolve-test.invalid"
BANNER = b"SSH-2.0-resolve\r\n"


def set_hosts_entry(original: str, address: str | None) -> None:
    lines = [line for line in original.splitlines() if NAME not in line]
    if address is not None:
        lines.append(f"{address} {NAME}")
    HOSTS.write_text("\n".join(lines) + "\n")


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(HOSTS, os.W_OK), reason="needs to edit /etc/hosts")
def test_a_backend_name_follows_its_dns_answer(tmp_path: Path) -> None:
    original = HOSTS.read_text()
    with TagServer("first", host="127.0.0.71") as first, TagServer("second", host="127.0.0.72", port=first.port):
        try:
            set_hosts_entry(original, "127.0.0.71")
            port = free_port()
            config = f"""listen: [127.0.0.1:{port}]
timeouts: {{identify: 1s, resolve: 300ms}}
routes:
  - name: named
    match: {{protocol: ssh}}
    to: {NAME}:{first.port}
"""
            with PassthruProcess(tmp_path, config, [("127.0.0.1", port)]) as proc:
                assert exchange(port, BANNER) == b"[first]" + BANNER
                set_hosts_entry(original, "127.0.0.72")
                wait_until(lambda: exchange(port, BANNER) == b"[second]" + BANNER)
                proc.wait_for_log(f"backend {NAME}:{first.port} now resolves to 127.0.0.72")
                set_hosts_entry(original, None)  # the name disappears: keep using the last answer
                proc.wait_for_log(f"cannot resolve backend {NAME}:{first.port}")
                assert exchange(port, BANNER) == b"[second]" + BANNER
        finally:
            HOSTS.write_text(original)


def test_the_resolver_keeps_the_last_good_address_and_follows_changes(monkeypatch) -> None:
    config = load_config_text(
        "listen: [127.0.0.1:9]\nroutes:\n  - {name: a, match: {protocol: ssh}, to: [localhost:22, 127.0.0.1:23]}\n",
        "config.yaml",
    )
    resolver = Resolver()
    resolver.apply(config)
    try:
        [named] = resolver.names  # the numeric backend is not looked up
        assert named.host == "localhost"
        assert resolver.address(named) == (named.family, named.sockaddr)
        answers = {"localhost": [(2, 1, 6, "", ("127.0.0.99", 22))]}
        monkeypatch.setattr("passthru.server.resolver.gsocket.getaddrinfo", lambda host, *a, **k: answers[host])
        resolver.refresh([named])
        assert resolver.address(named) == (2, ("127.0.0.99", 22))

        def fail(*args, **kwargs):
            raise OSError("temporary failure in name resolution")

        monkeypatch.setattr("passthru.server.resolver.gsocket.getaddrinfo", fail)
        resolver.refresh([named])
        assert resolver.address(named) == (2, ("127.0.0.99", 22)), "a failed lookup keeps the last good address"
        assert named in resolver.failing
    finally:
        resolver.stop()
