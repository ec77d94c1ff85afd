"""Hot reload with the real watchdog observer on a real directory, written the ways editors and
orchestrators write: each ends with the latest content loaded exactly once, within a second, and
no half-written file ever serves."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import gevent
import pytest

from passthru import watching as watcher_module
from tests.plugins.helpers import digest, source_of, version_of, wait_until


@pytest.fixture
def watched(tmp_path, make_users):
    """A directory with demo.py (version 1) whose UserIdentifiers watches it and records swaps."""
    path = tmp_path / "demo.py"
    path.write_text(source_of(1))
    users = make_users()
    served = []
    users.on_change(lambda: served.append(version_of(users)))
    users.load_all()
    users.start_watching()
    gevent.sleep(0.05)  # let the observer thread schedule its watch
    return users, path, served


def replace_atomically(path: Path, text: str) -> None:
    """What vim (writebackup), most editors and config tools do: write a temp file, rename over."""
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temp.write_text(text)
    os.replace(temp, path)


def test_atomic_rename_over_is_loaded_once_within_a_second(watched):
    users, path, served = watched
    replace_atomically(path, source_of(2))
    took = wait_until(lambda: version_of(users) == 2, timeout=1.0)
    gevent.sleep(0.3)
    assert served == [1, 2] and took < 1.0
    assert users.load_history(path) == [digest(source_of(1)), digest(source_of(2))]


def test_truncate_then_write_later_never_serves_the_partial_file(watched, plugin_log):
    users, path, served = watched
    final = source_of(2)
    with open(path, "w") as f:  # truncate (an empty file has no identify())
        f.flush()
        gevent.sleep(0.4)  # longer than the debounce: the empty file is looked at
        f.write(final[: len(final) // 2])  # half a file: does not compile
        f.flush()
        gevent.sleep(0.4)
        f.write(final[len(final) // 2 :])
    took = wait_until(lambda: version_of(users) == 2, timeout=1.0)
    gevent.sleep(0.3)
    assert served == [1, 2], "only complete versions ever served"
    assert users.load_history(path).count(digest(final)) == 1 and took < 1.0
    rejected = [r.getMessage() for r in plugin_log.records if r.levelname == "ERROR"]
    assert all("still serving the previous version" in m for m in rejected), rejected


def test_many_events_for_one_save_load_it_once(watched):
    users, path, served = watched
    final = source_of(2)
    with open(path, "w") as f:
        for start in range(0, len(final), 16):  # one modify event per chunk
            f.write(final[start : start + 16])
            f.flush()
            os.fsync(f.fileno())
            gevent.sleep(0.002)
    os.utime(path)  # and an attribute change on top
    wait_until(lambda: version_of(users) == 2, timeout=1.0)
    gevent.sleep(0.4)
    assert served == [1, 2]
    assert users.load_history(path) == [digest(source_of(1)), digest(final)]


def test_a_new_file_is_picked_up_and_a_deleted_one_removed(watched, tmp_path, plugin_log):
    users, path, _ = watched
    replace_atomically(tmp_path / "other.py", source_of("o", name="other"))
    wait_until(lambda: "other" in users.names(), timeout=1.0)
    path.unlink()
    wait_until(lambda: "demo" not in users.names(), timeout=1.0)
    assert users.names() == frozenset({"other"})
    assert any("routes naming it will not match" in r.getMessage() for r in plugin_log.records)


def test_a_broken_save_keeps_the_old_version_then_the_fix_loads(watched, plugin_log):
    users, path, served = watched
    replace_atomically(path, source_of(2).replace("return None", "return None +", 1))
    wait_until(lambda: users.statuses()[0].status == "rejected", timeout=1.0)
    assert version_of(users) == 1
    error = users.statuses()[0].last_error
    assert error.startswith(f"{path}:") and "SyntaxError" in error
    replace_atomically(path, source_of(3))
    wait_until(lambda: version_of(users) == 3, timeout=1.0)
    assert served == [1, 3]


def make_configmap_version(directory: Path, stamp: str, files: dict[str, str]) -> str:
    version = directory / f"..{stamp}"
    version.mkdir()
    for name, text in files.items():
        (version / name).write_text(text)
    return version.name


def configmap_update(directory: Path, stamp: str, files: dict[str, str]) -> None:
    """Exactly what the kubelet's AtomicWriter does for an update."""
    old = os.readlink(directory / "..data")
    new = make_configmap_version(directory, stamp, files)
    os.symlink(new, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", directory / "..data")
    for name in files:  # user-visible links for new keys
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)
    for entry in directory.iterdir():  # links of removed keys
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    shutil.rmtree(directory / old)


def test_kubernetes_configmap_updates(tmp_path, make_users, plugin_log):
    directory = tmp_path / "identifiers"
    directory.mkdir()
    first = make_configmap_version(directory, "2026_11_25_10_00_00.000000001", {"demo.py": source_of(1)})
    os.symlink(first, directory / "..data")
    os.symlink("..data/demo.py", directory / "demo.py")

    users = make_users(directory)
    served = []
    users.on_change(lambda: served.append((version_of(users), version_of(users, "extra"))))
    users.load_all()
    users.start_watching()
    gevent.sleep(0.05)
    assert version_of(users) == 1

    configmap_update(directory, "2026_11_25_10_05_00.000000002", {"demo.py": source_of(2)})
    took = wait_until(lambda: version_of(users) == 2, timeout=1.0)
    assert took < 1.0

    configmap_update(
        directory,
        "2026_11_25_10_10_00.000000003",
        {"demo.py": source_of(2), "extra.py": source_of("e", name="extra")},
    )
    wait_until(lambda: "extra" in users.names(), timeout=1.0)

    configmap_update(directory, "2026_11_25_10_15_00.000000004", {"extra.py": source_of("e", name="extra")})
    wait_until(lambda: "demo" not in users.names(), timeout=1.0)
    gevent.sleep(0.3)

    assert served == [(1, None), (2, None), (2, "e"), (None, "e")]
    assert [r for r in plugin_log.records if r.levelname == "ERROR"] == []
    assert users.load_history(directory / "extra.py") == [digest(source_of("e", name="extra"))]
    assert [Path(s.source).name for s in users.statuses()] == ["extra.py"]


def test_a_directory_created_after_start_is_followed(tmp_path, make_users):
    directory = tmp_path / "later"
    users = make_users(directory)
    users.load_all()
    users.start_watching()
    gevent.sleep(0.05)
    directory.mkdir()
    replace_atomically(directory / "demo.py", source_of(1))
    wait_until(lambda: version_of(users) == 1, timeout=1.5)
    replace_atomically(directory / "demo.py", source_of(2))
    wait_until(lambda: version_of(users) == 2, timeout=1.0)


def test_without_the_observer_polling_still_reloads(tmp_path, make_users, monkeypatch, plugin_log):
    monkeypatch.setattr(watcher_module, "_threads_are_greenlets", lambda: True)
    (tmp_path / "demo.py").write_text(source_of(1))
    users = make_users(poll_interval=0.1)
    users.load_all()
    users.start_watching()
    assert any("polling" in r.getMessage() for r in plugin_log.records)
    replace_atomically(tmp_path / "demo.py", source_of(2))
    wait_until(lambda: version_of(users) == 2, timeout=1.0)


def test_reloads_run_in_the_hub_thread_and_stop_ends_the_observer(watched, make_users):
    users, path, _ = watched
    threads = []
    users.on_change(lambda: threads.append(threading.get_ident()))
    observer_threads = [t for t in threading.enumerate() if "Observer" in type(t).__name__]
    assert observer_threads, "the observer runs in its own OS thread"
    replace_atomically(path, source_of(2))
    wait_until(lambda: threads, timeout=1.0)
    assert threads == [threading.main_thread().ident]
    users.stop()
    assert not any(t.is_alive() for t in observer_threads)
    replace_atomically(path, source_of(3))
    gevent.sleep(0.4)
    assert version_of(users) == 2, "no reloads after stop()"


def test_a_relative_directory_that_is_removed_and_recreated_is_followed(tmp_path, make_users, monkeypatch):
    monkeypatch.chdir(tmp_path)
    directory = Path("ids")
    directory.mkdir()
    (directory / "demo.py").write_text(source_of(1))
    users = make_users(directory)
    users.load_all()
    users.start_watching()
    gevent.sleep(0.05)
    shutil.rmtree(directory)
    wait_until(lambda: users.current() == (), timeout=1.0)
    directory.mkdir()
    gevent.sleep(0.3)  # the parent's watch sees the directory come back
    replace_atomically(directory / "demo.py", source_of(2))
    wait_until(lambda: version_of(users) == 2, timeout=1.0)
