"""StrictModes: identifier files any local user could change are refused (and say why), group-
writable ones load with a warning; symlinks are followed to what they point at (Kubernetes
ConfigMap mounts), and only mode bits count, never the owner (host directories mounted into a
container). Real files and directories under a temp dir; ``tmp_path``'s parents (``/tmp`` is
sticky) are accepted by design."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from passthru.plugins import ACTIVE, REJECTED, strictmodes
from passthru.plugins.strictmodes import check_file, resolve
from tests.plugins.helpers import REPO, source_of, version_of


@pytest.fixture
def ids(tmp_path: Path) -> Path:
    """An identifiers directory with sane modes whatever the umask."""
    directory = tmp_path / "identifiers"
    directory.mkdir()
    directory.chmod(0o755)
    return directory


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def status_of(users, path: Path):
    return next(s for s in users.statuses() if s.source == str(path))


def configmap(mount: Path, files: dict[str, str], stamp: str = "..2026_01_02_03_04_05.1", mode: int = 0o644) -> Path:
    """The layout kubelet's AtomicWriter makes: a timestamped directory with the real files,
    ``..data`` linking to it, and one link per key through ``..data``."""
    real = mount / stamp
    real.mkdir()
    real.chmod(0o755)
    for name, text in files.items():
        write(real / name, text, mode)
    data = mount / "..data"
    if data.is_symlink():
        os.replace(_link(mount / "..data_tmp", stamp), data)  # the atomic swap kubelet does
    else:
        data.symlink_to(stamp)
    for name in files:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(f"..data/{name}")
    return real


def _link(path: Path, target: str) -> Path:
    path.symlink_to(target)
    return path


def test_sane_modes_load(ids: Path, make_users) -> None:
    write(ids / "demo.py", source_of(1))
    users = make_users(ids)
    users.load_all()
    assert version_of(users) == 1
    assert status_of(users, ids / "demo.py").status == ACTIVE


def test_world_writable_file_refused_with_the_reason(ids: Path, make_users, plugin_log) -> None:
    path = write(ids / "demo.py", source_of(1), 0o666)
    users = make_users(ids)
    users.load_all()
    assert version_of(users) is None
    status = status_of(users, path)
    assert status.status == REJECTED and not status.serving
    assert status.last_error.startswith(f"{path}: refused: the file is world-writable (mode 0666)")
    assert "StrictModes" in status.last_error
    errors = [r.getMessage() for r in plugin_log.records if r.levelno == logging.ERROR]
    assert any(str(path) in m and "world-writable" in m and "not loaded" in m for m in errors)


def test_world_writable_file_keeps_the_previous_version_serving(ids: Path, make_users, plugin_log) -> None:
    path = write(ids / "demo.py", source_of(1))
    users = make_users(ids)
    users.load_all()
    assert version_of(users) == 1
    write(path, source_of(2), 0o666)  # someone made it writable for all and changed it
    users.rescan()
    assert version_of(users) == 1
    status = status_of(users, path)
    assert (status.status, status.serving) == (REJECTED, True)
    assert "world-writable" in status.last_error
    assert any("still serving the previous version" in r.getMessage() for r in plugin_log.records)


def test_fixing_the_mode_loads_the_same_content(ids: Path, make_users) -> None:
    path = write(ids / "demo.py", source_of(1), 0o646)
    users = make_users(ids)
    users.load_all()
    assert version_of(users) is None
    path.chmod(0o644)  # content unchanged: it must still be loaded now
    users.rescan()
    assert version_of(users) == 1
    assert status_of(users, path).status == ACTIVE


def test_refusal_is_logged_once_not_at_every_rescan(ids: Path, make_users, plugin_log) -> None:
    write(ids / "demo.py", source_of(1), 0o666)
    users = make_users(ids)
    users.load_all()
    users.rescan()
    users.rescan()
    refusals = [r for r in plugin_log.records if "world-writable" in r.getMessage()]
    assert len(refusals) == 1


@pytest.mark.parametrize("mode", [0o777, 0o1777], ids=["plain", "sticky"])
def test_world_writable_identifiers_directory_refused(ids: Path, make_users, mode: int) -> None:
    path = write(ids / "demo.py", source_of(1))
    ids.chmod(mode)  # sticky or not: anyone could add a file that Passthru would run
    users = make_users(ids)
    users.load_all()
    assert version_of(users) is None
    error = status_of(users, path).last_error
    assert f"the identifiers directory {ids} is world-writable (mode {mode:04o}" in error
    if mode & 0o1000:
        assert "sticky bit does not stop anyone adding a file" in error


def test_group_writable_warns_but_loads(ids: Path, make_users, plugin_log) -> None:
    path = write(ids / "demo.py", source_of(1), 0o664)
    ids.chmod(0o775)
    users = make_users(ids)
    users.load_all()
    assert version_of(users) == 1
    assert status_of(users, path).status == ACTIVE
    warnings = [r.getMessage() for r in plugin_log.records if r.levelno == logging.WARNING]
    [warning] = [m for m in warnings if "group-writable" in m]
    assert warning.startswith(f"{path}: the file is group-writable (mode 0664)")
    assert f"the identifiers directory {ids} is group-writable (mode 0775)" in warning
    users.rescan()
    assert len([r for r in plugin_log.records if "group-writable" in r.getMessage()]) == 1  # once


def test_configmap_layout_with_proper_target_modes_loads(ids: Path, make_users) -> None:
    real = configmap(ids, {"demo.py": source_of(1)})
    assert (ids / "demo.py").is_symlink() and (ids / "..data").is_symlink()
    assert check_file(ids / "demo.py", ids).refusal is None
    users = make_users(ids)
    users.load_all()
    assert version_of(users) == 1
    # kubelet's update: a new timestamped directory, then ..data swapped to it
    configmap(ids, {"demo.py": source_of(2)}, stamp="..2026_01_02_03_09_00.2")
    users.rescan()
    assert version_of(users) == 2
    assert resolve(ids / "demo.py")[0] != str(real / "demo.py")


def test_symlink_to_a_world_writable_target_refused(tmp_path: Path, ids: Path, make_users) -> None:
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    elsewhere.chmod(0o755)
    target = write(elsewhere / "real.py", source_of(1), 0o666)
    link = ids / "demo.py"
    link.symlink_to(target)
    users = make_users(ids)
    users.load_all()
    assert version_of(users) is None
    assert f"its target {target} is world-writable (mode 0666)" in status_of(users, link).last_error


def test_configmap_with_a_world_writable_target_refused(ids: Path, make_users) -> None:
    configmap(ids, {"demo.py": source_of(1)}, mode=0o666)
    users = make_users(ids)
    users.load_all()
    assert version_of(users) is None
    assert "..data" not in status_of(users, ids / "demo.py").last_error  # the real path is named
    assert "..2026_01_02_03_04_05.1/demo.py is world-writable" in status_of(users, ids / "demo.py").last_error


def test_symlink_into_a_world_writable_directory_refused(tmp_path: Path, ids: Path, make_users) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    drop.chmod(0o1777)  # like /tmp
    target = write(drop / "real.py", source_of(1))
    (ids / "demo.py").symlink_to(target)
    users = make_users(ids)
    users.load_all()
    assert version_of(users) is None
    assert f"directory {drop} is world-writable (mode 1777" in status_of(users, ids / "demo.py").last_error


def test_symlink_held_in_a_world_writable_directory_refused(tmp_path: Path, ids: Path, make_users) -> None:
    """A link on the way (here ``identifiers/demo.py -> ../drop/hop.py -> ../safe/real.py``) lives
    in a directory anyone can write to: anyone could point it somewhere else."""
    safe, drop = tmp_path / "safe", tmp_path / "drop"
    for folder, mode in ((safe, 0o755), (drop, 0o777)):
        folder.mkdir()
        folder.chmod(mode)
    write(safe / "real.py", source_of(1))
    (drop / "hop.py").symlink_to(safe / "real.py")
    (ids / "demo.py").symlink_to(drop / "hop.py")
    users = make_users(ids)
    users.load_all()
    assert version_of(users) is None
    assert f"directory {drop} is world-writable" in status_of(users, ids / "demo.py").last_error


def test_world_writable_parent_without_sticky_bit_refused(tmp_path: Path, make_users) -> None:
    parent = tmp_path / "open"
    parent.mkdir()
    ids = parent / "identifiers"
    ids.mkdir()
    ids.chmod(0o755)
    write(ids / "demo.py", source_of(1))
    parent.chmod(0o777)  # anyone could rename identifiers/ away and put their own there
    users = make_users(ids)
    users.load_all()
    assert version_of(users) is None
    error = status_of(users, ids / "demo.py").last_error
    assert f"directory {parent} above {ids} is world-writable without the sticky bit" in error
    parent.chmod(0o1777)  # sticky, like /tmp: accepted above the identifiers directory
    users.rescan()
    assert version_of(users) == 1


def test_owner_is_not_checked(ids: Path, make_users) -> None:
    """A host directory mounted into a container belongs to a uid the container does not know."""
    path = write(ids / "demo.py", source_of(1))
    if os.geteuid() == 0:
        os.chown(path, 54321, 54321)
        os.chown(ids, 54321, 54321)
    users = make_users(ids)
    users.load_all()
    assert version_of(users) == 1


def test_read_only_mount_counts_as_not_writable(ids: Path, make_users, monkeypatch) -> None:
    """A ConfigMap volume's root directory is 0777, but mounted read-only into the container."""
    configmap(ids, {"demo.py": source_of(1)})
    ids.chmod(0o777)
    assert check_file(ids / "demo.py", ids).refusal is not None  # on a writable file system
    monkeypatch.setattr(strictmodes._Checker, "read_only", lambda self, path: path.startswith(str(ids)))
    users = make_users(ids)
    users.load_all()
    assert version_of(users) == 1


CHECK_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from passthru.plugins.strictmodes import check_file
directory = Path(sys.argv[2])
print(check_file(directory / "demo.py", directory).refusal)
"""


def test_read_only_bind_mount(tmp_path: Path, ids: Path) -> None:
    """The same on a real read-only bind mount (in a private mount namespace), where this
    machine allows mounting; skipped elsewhere."""
    configmap(ids, {"demo.py": source_of(1)})
    ids.chmod(0o777)
    mount = tmp_path / "mnt"
    mount.mkdir()
    script = tmp_path / "check.py"
    script.write_text(CHECK_SCRIPT)
    shell = (
        f"mount --bind {ids} {mount} && mount -o remount,bind,ro {mount} && echo mounted && "
        f"{sys.executable} {script} {REPO} {mount}"
    )
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pytest.skip("unshare is not available")
    if "mounted" not in done.stdout:
        pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")
    assert done.stdout.split() == ["mounted", "None"], done.stderr


def test_strict_modes_can_be_turned_off(ids: Path, make_users) -> None:
    write(ids / "demo.py", source_of(1), 0o666)
    users = make_users(ids, strict_modes=False)
    users.load_all()
    assert version_of(users) == 1


def test_identifiers_list_shows_the_refusal(ids: Path) -> None:
    path = write(ids / "demo.py", source_of(1), 0o666)
    done = subprocess.run(
        [sys.executable, "-m", "passthru.cli", "identifiers", "list", "--dir", str(ids), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert entry["status"] == REJECTED and entry["serving"] is False
    assert entry["last_error"].startswith(f"{path}: refused: the file is world-writable (mode 0666)")
