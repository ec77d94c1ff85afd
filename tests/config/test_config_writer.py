"""Safety of edits on disk: refusals and dry runs leave the file untouched, writes are atomic,
keep the mode, follow symlinks, and concurrent edits never lose one another."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from passthru.config import load_config
from passthru.config.edit import EditError
from passthru.config.writer import EditRefused, edit_config, lock_path, locked
from tests.config.cli_runner import run, spawn
from tests.config.config_helpers import FIXTURES


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    shutil.copy(FIXTURES / "commented.yaml", path)
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("route", "remove", "nope"), "no route named 'nope' (routes: web, ssh, api, mail)"),
        (("route", "add", "web", "--to", "127.0.0.1:1"), "a route named 'web' already exists"),
        (("route", "add", "x", "--to", "127.0.0.1:1", "--after", "nope"), "no route named 'nope'"),
        (("route", "move", "web", "--after", "web"), "cannot be moved relative to itself"),
        (("route", "set", "nope", "--to", "127.0.0.1:1"), "no route named 'nope'"),
        (("route", "set", "web"), "nothing to change"),
        (("route", "add", "x", "--match", "sni", "--to", "127.0.0.1:1"), "expected KEY=VALUE"),
        (("route", "add", "x", "--match", "protocol=nosuch", "--to", "127.0.0.1:1"), "unknown protocol 'nosuch'"),
        (("route", "add", "x", "--to", "127.0.0.1"), "invalid address '127.0.0.1'"),
        (("route", "remove", "ssh"), "unknown route 'ssh'"),  # on_timeout names it
        (("config", "set", "timeouts.identify", "3"), "use a number with a unit"),
        (("config", "set", "timeouts.identfy", "3s"), "did you mean 'identify'?"),
        (("config", "set", "admin.port", "1"), "'admin' is a single value"),
    ],
)
def test_refused_edits_leave_the_file_untouched(config, capsys, argv, message):
    before = config.read_bytes()
    stamp = config.stat().st_mtime_ns
    assert run(*argv, "-c", str(config)) == 1
    err = capsys.readouterr().err
    assert err.startswith("passthru: refused: ") and message in err
    assert config.read_bytes() == before and config.stat().st_mtime_ns == stamp
    assert [p.name for p in config.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_an_already_invalid_config_is_reported_as_such(config, capsys):
    config.write_text(config.read_text().replace("default: reject", "default: nowhere"))
    before = config.read_bytes()
    assert run("config", "set", "timeouts.identify", "5s", "-c", str(config)) == 1
    assert "is not valid now; fix it first" in capsys.readouterr().err
    assert config.read_bytes() == before


def test_dry_run_prints_a_diff_and_leaves_the_file(config, capsys):
    before = config.read_bytes()
    assert run("config", "set", "timeouts.identify", "5s", "--dry-run", "-c", str(config)) == 0
    out = capsys.readouterr().out
    assert config.read_bytes() == before
    assert out.startswith(f"--- {config}\n+++ {config} (edited)\n@@ ")
    assert "-  identify: 3s                     # SSH" in out and "+  identify: 5s                     # SSH" in out


def test_no_change_is_not_written(config, capsys):
    stamp = config.stat().st_mtime_ns
    assert run("config", "set", "timeouts.identify", "3s", "-c", str(config)) == 0
    assert "no change" in capsys.readouterr().out
    assert config.stat().st_mtime_ns == stamp


def test_mode_is_kept_and_lock_file_sits_beside(config):
    config.chmod(0o640)
    inode = config.stat().st_ino
    assert run("route", "remove", "api", "-c", str(config)) == 0
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert config.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert lock_path(config) == config.parent / ".config.yaml.lock" and lock_path(config).exists()


def test_a_symlinked_config_is_edited_at_its_target(tmp_path, config):
    link = tmp_path / "current.yaml"
    link.symlink_to(config)
    assert run("route", "remove", "api", "-c", str(link)) == 0
    assert link.is_symlink() and "name: api" not in config.read_text()


def test_concurrent_edits_both_land(config):
    """Many processes adding routes at once: the lock serialises read-modify-write."""
    names = [f"r{i}" for i in range(6)]
    procs = [
        spawn("route", "add", name, "--to", f"127.0.0.1:{2000 + i}", "-c", str(config)) for i, name in enumerate(names)
    ]
    results = [(*p.communicate(timeout=60), p.returncode) for p in procs]
    assert all(code == 0 for _, _, code in results), results
    text = config.read_text()
    assert all(f"  - name: {name}\n" in text for name in names)
    assert [r.name for r in load_config(config).routes][4:] == sorted(names, key=text.index)


def test_lock_serialises_writers(config):
    """While one edit holds the lock, another waits rather than reading the old file."""
    with locked(config):
        proc = spawn("route", "remove", "api", "-c", str(config))
        with pytest.raises(subprocess.TimeoutExpired):  # still waiting for the lock
            proc.wait(timeout=1.0)
        assert "name: api" in config.read_text()
    assert proc.wait(timeout=60) == 0
    assert "name: api" not in config.read_text()


def test_edit_config_api(config):
    outcome = edit_config(config, lambda text: text.replace("idle: 1h", "idle: 2h"))
    assert outcome.written and outcome.changed and "idle: 2h" in config.read_text()

    def refuse(text: str) -> str:
        raise EditError("not today")

    with pytest.raises(EditRefused, match="not today"):
        edit_config(config, refuse)
    with pytest.raises(EditRefused, match="cannot read"):
        edit_config(config.parent / "absent.yaml", lambda t: t)


def test_unreadable_yaml_is_refused(config, capsys):
    config.write_text("listen: [unclosed\n")
    assert run("route", "add", "x", "--to", "127.0.0.1:1", "-c", str(config)) == 1
    assert "not valid YAML" in capsys.readouterr().err
    assert os.path.getsize(config) == len("listen: [unclosed\n")
