"""``capture:``: the first bytes of connections nothing identified, written beside a ``.json``,
never delaying a connection, rate-limited across workers, pruned to ``max_files``, paused (and
logged once) on a full disk or an unusable directory; and ``passthru identifiers test FILE
--captures DIR`` run over what was captured."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from passthru import capture as capture_module
from passthru.capture import Capture, RateWindow, reasons
from passthru.config.operating import CaptureSettings
from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import PassthruProcess, run_cli

NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z-\d+-\d+\.bin")
SSH = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"

CONFIG = """\
listen: [127.0.0.1:{port}]
workers: 2
timeouts: {{identify: 400ms}}
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: {backend}
default: reject
capture:
  dir: {dir}
  when: [unmatched, timeout]
  max_bytes: 16B
"""

GREETING = """\
NAME = "zqx"

def identify(data: bytes):
    if len(data) < 5:
        return 5 if b"ZQX1 ".startswith(data) else None
    if not data.startswith(b"ZQX1 "):
        return None
    return {"who": data[5:].split(b"\\n")[0].decode("ascii", "replace")}

SAMPLES = {"match": [b"ZQX1 bob\\n"], "no_match": [b"GET / HTTP/1.1\\r\\n"]}
"""


def send(port: int, data: bytes, *, wait_close: bool = True) -> bytes:
    """Send ``data`` and read until Passthru closes (it rejects what nothing matched)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        return recv_all(sock) if wait_close else b""


def samples(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.bin"))


def wait_for_samples(directory: Path, count: int, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(found := samples(directory)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} samples in {directory}"
        time.sleep(0.05)
    return found


def test_unidentified_traffic_is_captured_and_an_identifier_tested_against_it(tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    with TagServer("ssh") as backend:
        port = free_port()
        config = CONFIG.format(port=port, backend=backend.address, dir="captures/")
        with PassthruProcess(tmp_path, config, [("127.0.0.1", port)]) as proc:
            assert send(port, b"ZQX1 alice\n") == b""  # rejected, closed in order
            assert send(port, b"ZQX1 bob-with-a-long-name\n") == b""
            assert send(port, b"\x07\x07unknown") == b""
            with socket.create_connection(("127.0.0.1", port), timeout=10) as partial:
                partial.sendall(b"ZQ")  # then silence: timeouts.identify runs out
                assert recv_all(partial) == b""
            with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
                assert recv_all(silent) == b""  # nothing sent: nothing to capture
            with socket.create_connection(("127.0.0.1", port), timeout=10) as ssh:
                ssh.sendall(SSH)  # identified and routed: not captured
                assert ssh.recv(5) == b"[ssh]"
            found = wait_for_samples(captures, 4)
            proc.wait_for_log("end=rejected")
    assert len(found) == 4
    assert stat.S_IMODE(captures.stat().st_mode) == 0o700
    metas = {}
    for path in found:
        assert NAME.fullmatch(path.name), path.name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["length"] == len(path.read_bytes())
        assert meta["listener"] == f"127.0.0.1:{port}"
        assert meta["client"].startswith("127.0.0.1:")
        metas[path.read_bytes()] = meta
    assert set(metas) == {b"ZQX1 alice\n", b"ZQX1 bob-with-a-", b"\x07\x07unknown", b"ZQ"}
    assert metas[b"ZQX1 bob-with-a-"]["received"] == len(b"ZQX1 bob-with-a-long-name\n")  # cut to max_bytes
    assert metas[b"ZQ"]["reason"] == "timeout"
    assert metas[b"ZQX1 alice\n"]["reason"] == "unmatched"
    assert metas[b"ZQX1 alice\n"]["reasons"] == ["unmatched", "rejected"]

    draft = tmp_path / "zqx.py"
    draft.write_text(GREETING)
    result = run_cli("identifiers", "test", str(draft), "--captures", str(captures))
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "2 of 4 samples match" in out
    assert '{"who": "alice"}' in out
    assert "wants 5 bytes; the sample has 2" in out  # the partial "ZQ"
    assert "[timeout from 127.0.0.1:" in out


def test_identifiers_test_captures_errors(tmp_path: Path) -> None:
    draft = tmp_path / "zqx.py"
    draft.write_text(GREETING)
    missing = run_cli("identifiers", "test", str(draft), "--captures", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "cannot read captures" in missing.stderr.decode()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.bin").write_bytes(b"ZQX1 \xff\n")
    raising = tmp_path / "bad.py"
    raising.write_text(
        GREETING.replace('return {"who"', 'if b"\\xff" in data: raise ValueError("boom")\n    return {"who"')
    )
    result = run_cli("identifiers", "test", str(raising), "--captures", str(tmp_path / "c"))
    assert result.returncode == 1
    assert "ERROR" in result.stdout.decode() and "boom" in result.stdout.decode()
    assert "0 of 1 samples match" in result.stdout.decode()


def test_reasons() -> None:
    assert reasons("no_match", True, True) == ("unmatched", "rejected")
    assert reasons("timeout", False, False) == ("timeout",)
    assert reasons("identified", False, False) == ()


def settings(directory: Path, **changes: object) -> CaptureSettings:
    values = {"when": ("unmatched",), "max_bytes": 4096, "max_files": 1000, "rate": (1000, 1.0), **changes}
    return CaptureSettings(directory, **values)  # type: ignore[arg-type]


def wait_written(cap: Capture, count: int) -> None:
    deadline = time.monotonic() + 10
    while cap.written < count:
        assert time.monotonic() < deadline, f"{cap.written} of {count} written"
        time.sleep(0.01)


def test_not_in_when_is_not_captured(tmp_path: Path) -> None:
    cap = Capture(settings(tmp_path / "c", when=("timeout",)))
    cap.offer(b"abc", ("unmatched", "rejected"), "c", "l", "0-1")
    cap.offer(b"abd", ("timeout",), "c", "l", "0-2")
    wait_written(cap, 1)
    cap.close()
    assert [p.read_bytes() for p in samples(tmp_path / "c")] == [b"abd"]


def test_oldest_removed_beyond_max_files(tmp_path: Path) -> None:
    cap = Capture(settings(tmp_path / "c", max_files=3))
    for n in range(6):
        cap.offer(f"sample {n}".encode(), ("unmatched",), "c", "l", f"0-{n}")
        wait_written(cap, n + 1)
    cap.close()
    kept = samples(tmp_path / "c")
    assert [p.read_bytes() for p in kept] == [b"sample 3", b"sample 4", b"sample 5"]
    assert sorted(p.name for p in (tmp_path / "c").glob("*.json")) == [p.with_suffix(".json").name for p in kept]


def test_offer_never_blocks_when_the_writer_is_stuck(tmp_path: Path) -> None:
    """Hold the rate file's lock as another worker could: the writer waits, offers drop."""
    directory = tmp_path / "c"
    directory.mkdir()
    holder = os.open(directory / capture_module.RATE_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    cap = Capture(settings(directory))
    try:
        for n in range(capture_module.QUEUE_SIZE + 50):
            cap.offer(b"x", ("unmatched",), "c", "l", f"0-{n}")
        assert cap.dropped >= 49  # one may have left the queue for the (waiting) writer
        assert cap.written == 0
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    wait_written(cap, 1)
    cap.close()


def test_rate_is_shared_by_processes(tmp_path: Path) -> None:
    """Four forked processes ask 25 times each in one window of ``rate: 10/s``: 10 grants in all."""
    path = tmp_path / capture_module.RATE_FILE
    now = 1_700_000_000.5
    pids, reads = [], []
    for _ in range(4):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                window = RateWindow(path, 10, 1.0)
                granted = sum(window.take(now) for _ in range(25))
                os.write(w, str(granted).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        pids.append(pid)
        reads.append(r)
    total = 0
    for pid, r in zip(pids, reads, strict=True):
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        total += int(os.read(r, 10))
        os.close(r)
    assert total == 10
    window = RateWindow(path, 10, 1.0)
    assert window.take(now + 1)  # the next window starts afresh
    window.close()


def test_bad_directory_is_logged_once_and_capture_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cap = Capture(settings(blocker / "captures"))
    caplog.set_level(logging.INFO, "passthru.capture")
    cap.offer(b"one", ("unmatched",), "c", "l", "0-1")
    deadline = time.monotonic() + 10
    while cap.paused_until == 0.0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    cap.offer(b"two", ("unmatched",), "c", "l", "0-2")  # paused: not even queued
    assert cap.queue.qsize() == 0
    cap.paused_until = 0.0  # as if the pause were over; the directory is still bad
    cap.offer(b"three", ("unmatched",), "c", "l", "0-3")
    while cap.paused_until == 0.0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "Not a directory" in errors[0].getMessage() and "paused" in errors[0].getMessage()
    blocker.unlink()
    cap.paused_until = 0.0
    cap.offer(b"four", ("unmatched",), "c", "l", "0-4")
    wait_written(cap, 1)
    cap.close()
    assert "writing samples to" in caplog.text
    assert [p.read_bytes() for p in samples(blocker / "captures")] == [b"four"]


def test_full_disk_pauses_capture_and_connections_go_on(tmp_path: Path) -> None:
    """The capture directory on a 32 KiB tmpfs (in a mount namespace of Passthru's own)."""
    probe = subprocess.run(
        ["unshare", "--mount", "--", "mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a new mount namespace here: {probe.stderr.strip()}")
    port = free_port()
    captures = tmp_path / "captures"
    captures.mkdir(mode=0o700)
    config = CONFIG.format(port=port, backend=f"127.0.0.1:{free_port()}", dir="captures/").replace(
        "max_bytes: 16B", "max_bytes: 4KiB"
    )
    mount = f'mount -t tmpfs -o size=32k,mode=0700 tmpfs {captures} && exec "$@"'
    wrapper = ("unshare", "--mount", "--", "sh", "-c", mount, "sh")
    with PassthruProcess(tmp_path, config, [("127.0.0.1", port)], wrapper=wrapper) as proc:
        for n in range(12):
            assert send(port, b"\x07" * 4000 + str(n).encode()) == b""
            time.sleep(0.12)  # stay under rate: 10/s
        proc.wait_for_log("capture paused")
        assert proc.process is not None
        seen = Path(f"/proc/{proc.process.pid}/root") / str(captures).lstrip("/")
        assert 1 <= len(samples(seen)) < 12
        assert send(port, b"\x07still served") == b""
        deadline = time.monotonic() + 10
        while (logs := proc.logs()).count("end=rejected") < 13:
            assert time.monotonic() < deadline, logs
            time.sleep(0.05)
    paused_in = re.findall(r"capture: cannot write samples .* paused in process (\d+)", logs)
    assert 1 <= len(paused_in) == len(set(paused_in)) <= 2  # once per worker that met the full disk
    assert "No space left on device" in logs
