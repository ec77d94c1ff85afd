"""Issue 11: the file watchers must cost a connection nothing. Reads of other files in the
watched directory, and a log appended to beside the config, must not reach our process at all
(the inotify mask asks only for creates, moves, deletes and close-after-write)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gevent

from passthru import watching
from passthru.watching import DirectoryWatcher


def test_reads_and_appends_beside_the_config_never_reach_us(tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []
    forward = watching._Forward.on_any_event

    def counting(self, event) -> None:  # type: ignore[no-untyped-def]
        seen.append(f"{event.event_type} {Path(event.src_path).name}")
        forward(self, event)

    monkeypatch.setattr(watching._Forward, "on_any_event", counting)
    config = tmp_path / "config.yaml"
    config.write_text("listen: [127.0.0.1:1]\n")
    page = tmp_path / "index.html"
    page.write_text("<p>hello</p>")
    log_file = (tmp_path / "access.log").open("a")  # a web server's log, open before we start
    settled: list[float] = []
    watcher = DirectoryWatcher(
        tmp_path,
        lambda: settled.append(time.monotonic()),
        log=logging.getLogger("test"),
        relevant=lambda name: name == "config.yaml",
        files=lambda _directory: [config],
    )
    watcher.start()
    try:
        for _ in range(200):  # a web server serving its files and logging each request
            page.read_bytes()
            config.read_bytes()  # our own reads of the config, too
            log_file.write("GET /index.html 200\n")
            log_file.flush()
        gevent.sleep(0.5)
        assert seen == [], f"events that should never reach the process: {seen[:10]}"
        assert settled == []
        config.write_text("listen: [127.0.0.1:2]\n")  # a real change still does
        deadline = time.monotonic() + 5
        while not settled and time.monotonic() < deadline:
            gevent.sleep(0.05)
        assert settled, "a change to the config was not noticed"
        assert any(event.endswith("config.yaml") for event in seen)
    finally:
        watcher.stop()
        log_file.close()


def blocked_signals(thread_id: int) -> int:
    """The thread's blocked-signal mask, from the kernel."""
    for line in Path(f"/proc/self/task/{thread_id}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk for thread {thread_id}")


def test_watcher_threads_never_take_the_alarm(tmp_path: Path) -> None:
    """The user identifiers' time limit ticks with SIGALRM; a watcher thread that could receive
    it would wake up and take the GIL from the hub. Every thread the watcher starts blocks it,
    and the main thread does not."""
    import signal
    import threading

    before = {thread.native_id for thread in threading.enumerate()}
    watcher = DirectoryWatcher(
        tmp_path,
        lambda: None,
        log=logging.getLogger("test"),
        relevant=lambda name: name == "config.yaml",
        files=lambda _directory: [],
    )
    watcher.start()
    try:
        started = [thread.native_id for thread in threading.enumerate() if thread.native_id not in before]
        assert started, "the watcher started no thread"
        alarm = 1 << (signal.SIGALRM - 1)
        for thread_id in started:
            assert blocked_signals(thread_id) & alarm, f"thread {thread_id} may receive SIGALRM"
        assert not blocked_signals(threading.main_thread().native_id) & alarm
    finally:
        watcher.stop()
