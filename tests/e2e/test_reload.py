"""Live reload: SIGHUP and file changes swap routes for new connections, never cut old ones,
and an invalid new config is rejected while the old one keeps serving."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backends import TagServer
from tests.support.net import describe, exchange, expect, free_port, recv_all
from tests.support.passthru_process import PassthruProcess
from tests.support.slow_start import slow_start
from tests.support.waiting import wait_until

BANNER = b"SSH-2.0-reload-test\r\n"


def config_text(port: int, target: str, *, extra_listen: int | None = None, idle: str = "30s") -> str:
    listen = f"  - 127.0.0.1:{port}\n" + (f"  - 127.0.0.1:{extra_listen}\n" if extra_listen else "")
    return f"""# comment kept by operators
listen:
{listen}timeouts: {{identify: 1s, connect: 2s, idle: {idle}}}
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: {target}
"""


def write_atomically(path: Path, text: str) -> None:
    """What editors and `passthru route` do: write a temp file, rename it over the original."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def reaches(port: int, tag: bytes) -> bool:
    try:
        return exchange(port, BANNER, timeout=3).startswith(tag)
    except OSError:
        return False


@pytest.fixture
def backends() -> Iterator[tuple[TagServer, TagServer]]:
    with TagServer("old") as old, TagServer("new") as new:
        yield old, new


@pytest.fixture
def started(tmp_path: Path, backends) -> Iterator[PassthruProcess]:
    old, _ = backends
    port = free_port()
    proc = PassthruProcess(tmp_path, config_text(port, old.address), [("127.0.0.1", port)])
    proc.port = port  # type: ignore[attr-defined]
    with proc:
        yield proc


def open_relayed(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(BANNER)
    expect(sock, b"[old]" + BANNER)
    return sock


def finish(sock: socket.socket, words: bytes = b"still here") -> bytes:
    sock.sendall(words)
    sock.shutdown(socket.SHUT_WR)
    rest = recv_all(sock)
    sock.close()
    return rest


def test_sighup_reload_switches_new_connections_and_keeps_old_ones(started, backends) -> None:
    _, new = backends
    established = open_relayed(started.port)
    started.config_path.write_text(config_text(started.port, new.address))
    started.process.send_signal(signal.SIGHUP)
    wait_until(lambda: reaches(started.port, b"[new]"))
    assert finish(established) == b"still here"
    assert "reloaded" in started.logs()


def test_file_change_is_picked_up_within_a_second(started, backends) -> None:
    _, new = backends
    established = open_relayed(started.port)
    write_atomically(started.config_path, config_text(started.port, new.address))
    assert wait_until(lambda: reaches(started.port, b"[new]"), timeout=3) < 1.5
    assert finish(established) == b"still here"


def test_invalid_config_is_rejected_and_the_old_one_keeps_serving(started, backends) -> None:
    write_atomically(started.config_path, config_text(started.port, "127.0.0.1:notaport"))
    log = started.wait_for_log("reload rejected")
    assert f"{started.config_path}:8:9:" in log  # the same file:line:column message as `passthru check`
    assert reaches(started.port, b"[old]")
    started.process.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert reaches(started.port, b"[old]")


def test_listen_addresses_follow_the_file(started, backends) -> None:
    old, _ = backends
    extra = free_port()
    write_atomically(started.config_path, config_text(started.port, old.address, extra_listen=extra))
    wait_until(lambda: reaches(extra, b"[old]"))
    write_atomically(started.config_path, config_text(started.port, old.address))
    wait_until(lambda: not reaches(extra, b"[old]"))
    assert reaches(started.port, b"[old]")


def test_an_edit_while_passthru_starts_is_not_missed(tmp_path: Path, backends) -> None:
    """The config changes after Passthru read it but before it watches the file (start-up
    paused right after binding the listeners): the change is still picked up."""
    old, new = backends
    port = free_port()
    proc = PassthruProcess(
        tmp_path, config_text(port, old.address), [("127.0.0.1", port)], launcher=slow_start("sync_listeners")
    )
    with proc:
        proc.wait_for_log("paused")
        write_atomically(proc.config_path, config_text(port, new.address))
        wait_until(lambda: reaches(port, b"[new]"))
        assert "reloaded" in proc.logs()


def test_kubernetes_configmap_symlink_swap(tmp_path: Path, backends) -> None:
    """A ConfigMap volume: config.yaml -> ..data/config.yaml, ..data -> ..<timestamp>/ swapped atomically."""
    old, new = backends
    port = free_port()
    mount = tmp_path / "mount"
    mount.mkdir()

    def publish(version: str, text: str) -> None:
        payload = mount / f"..2026_11_25_{version}"
        payload.mkdir()
        (payload / "config.yaml").write_text(text)
        (mount / "..data_tmp").symlink_to(payload.name)
        os.replace(mount / "..data_tmp", mount / "..data")

    publish("01", config_text(port, old.address))
    (mount / "config.yaml").symlink_to("..data/config.yaml")
    proc = PassthruProcess(tmp_path, "", [("127.0.0.1", port)])
    proc.config_path = mount / "config.yaml"
    with proc:
        assert reaches(port, b"[old]")
        publish("02", config_text(port, new.address))
        assert wait_until(lambda: reaches(port, b"[new]"), timeout=3) < 1.5


def test_reload_under_load_cuts_no_connection(started, backends) -> None:
    old, new = backends
    failures: list[str] = []
    done = threading.Event()

    def client(index: int) -> None:
        while not done.is_set():
            payload = os.urandom(20_000)
            try:
                with socket.create_connection(("127.0.0.1", started.port), timeout=10) as sock:
                    sock.sendall(BANNER)
                    head = recv_all(sock, 5)
                    if head not in (b"[old]", b"[new]"):
                        failures.append(f"client {index}: no head, received {describe(head)}")
                        continue
                    for offset in range(0, len(payload), 5000):
                        sock.sendall(payload[offset : offset + 5000])
                        time.sleep(0.01)
                    sock.shutdown(socket.SHUT_WR)
                    echoed = recv_all(sock)
                    if echoed != BANNER + payload:
                        failures.append(f"client {index} via {head!r}: echo {describe(echoed, BANNER + payload)}")
            except OSError as exc:
                failures.append(f"client {index}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for round_ in range(6):
        time.sleep(0.25)
        target = new if round_ % 2 == 0 else old
        write_atomically(started.config_path, config_text(started.port, target.address))
    time.sleep(0.5)
    done.set()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == [], "\n".join(failures[:20])
    assert started.logs().count("reloaded") >= 3
    assert new.connections > 0 and old.connections > 0
