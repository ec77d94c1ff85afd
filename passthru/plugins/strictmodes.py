"""StrictModes for identifier files (in the spirit of sshd's): code others could change is not run.

Passthru executes every ``*.py`` in ``identifiers/``. A file is refused when the code it would run
could be changed by any local user, and loaded with a warning when a whole group could change it.
Only the mode bits are looked at, never the owner: a directory mounted from the host into a
container belongs to a host user the container does not know, and must keep working.

What is checked (symlinks followed, each link resolved to its real location, because a Kubernetes
ConfigMap mount is all symlinks whose own mode is always 0777: ``foo.py -> ..data/foo.py``,
``..data -> ..2026_01_01_...``):

1. **The file** Passthru reads (the link's final target): world-writable refuses, group-writable
   warns.
2. **The directories that decide what that file is**: the identifiers directory itself (anyone who
   can write there can add a file that runs), the directory holding the target, and the directory
   holding each symlink followed on the way (to the file, and to the identifiers directory when it
   is a link). World-writable refuses, *even with the sticky bit* (a sticky directory still lets
   anyone add a file; keep identifier files out of ``/tmp``); group-writable warns.
3. **Every directory above those**, up to ``/``: world-writable *without* the sticky bit refuses
   (anyone could rename the directory below and put their own in its place). A sticky one such as
   ``/tmp`` is accepted above the identifiers directory: it stops others from renaming entries
   they do not own. Group-writable parents are not reported (that would need owners, as sshd
   uses, to be meaningful).

Anything on a **read-only mount** is not writable whatever its mode bits say, and passes: a
ConfigMap volume's root directory is 0777 but mounted read-only into the container. (Passthru
cannot see other mounts of the same files: a world-writable host directory mounted read-only is
trusted like a read-only one.)
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


@dataclass(frozen=True)
class ModeCheck:
    """The outcome for one file: ``refusal`` (why it must not load) or None, and warnings."""

    refusal: str | None
    warnings: tuple[str, ...] = ()


def check_file(path: Path, directory: Path) -> ModeCheck:
    """Check ``path`` (a file listed in the identifiers ``directory``). Raises ``OSError`` when
    the file or a directory cannot be looked at (``FileNotFoundError``: it went away)."""
    checker = _Checker()
    target, file_links = resolve(path)
    real_directory, directory_links = resolve(directory)
    warnings: list[str] = []
    problem = checker.file(Path(path), target, warnings)
    own = _unique([real_directory, *directory_links, *file_links, os.path.dirname(target)])
    for index, folder in enumerate(own):
        role = "the identifiers directory" if index == 0 else "directory"
        problem = problem or checker.directory(folder, role, warnings)
    for folder in own:
        problem = problem or checker.parents(folder, own)
    return ModeCheck(problem, tuple(warnings))


def resolve(path: Path | str) -> tuple[str, list[str]]:
    """``os.path.realpath(path)``, and the real directories that hold each symlink followed.

    Walks the path one component at a time as the kernel does, so a link anywhere in it (a
    ConfigMap's ``..data``, a linked identifiers directory) is seen with the directory it is in.
    """
    parts = list(reversed(os.path.abspath(path).split(os.sep)))
    current = os.sep
    holders: list[str] = []
    hops = 0
    while parts:
        name = parts.pop()
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        if not os.path.islink(candidate):
            current = candidate
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", str(path))
        holders.append(current)
        link = os.readlink(candidate)
        if link.startswith(os.sep):
            current = os.sep
        parts.extend(reversed(link.split(os.sep)))
    return current, holders


class _Checker:
    """One check's ``stat``/``statvfs`` calls, each path looked at once."""

    def __init__(self) -> None:
        self._stats: dict[str, os.stat_result] = {}
        self._read_only: dict[str, bool] = {}

    def stat(self, path: str) -> os.stat_result:
        if path not in self._stats:
            self._stats[path] = os.stat(path)
        return self._stats[path]

    def writable_by_others(self, path: str, bit: int) -> bool:
        return bool(self.stat(path).st_mode & bit) and not self.read_only(path)

    def read_only(self, path: str) -> bool:
        if path not in self._read_only:
            try:
                self._read_only[path] = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
            except OSError:
                self._read_only[path] = False
        return self._read_only[path]

    def file(self, listed: Path, target: str, warnings: list[str]) -> str | None:
        mode = self.stat(target).st_mode
        name = f"its target {target}" if os.path.islink(listed) else "the file"
        if self.writable_by_others(target, stat.S_IWOTH):
            return (
                f"{name} is world-writable (mode {_mode(mode)}): any local user could change the code it runs; "
                f"chmod o-w {target}"
            )
        if self.writable_by_others(target, stat.S_IWGRP):
            warnings.append(f"{name} is group-writable (mode {_mode(mode)})")
        return None

    def directory(self, folder: str, role: str, warnings: list[str]) -> str | None:
        mode = self.stat(folder).st_mode
        if self.writable_by_others(folder, stat.S_IWOTH):
            sticky = ", and the sticky bit does not stop anyone adding a file" if mode & stat.S_ISVTX else ""
            return (
                f"{role} {folder} is world-writable (mode {_mode(mode)}{sticky}): "
                f"any local user could add or replace identifier code; chmod o-w {folder}"
            )
        if self.writable_by_others(folder, stat.S_IWGRP):
            warnings.append(f"{role} {folder} is group-writable (mode {_mode(mode)})")
        return None

    def parents(self, folder: str, own: list[str]) -> str | None:
        for parent in Path(folder).parents:
            above = str(parent)
            if above in own:
                continue
            mode = self.stat(above).st_mode
            if self.writable_by_others(above, stat.S_IWOTH) and not mode & stat.S_ISVTX:
                return (
                    f"directory {above} above {folder} is world-writable without the sticky bit "
                    f"(mode {_mode(mode)}): any local user could replace what is below it; chmod o-w (or +t) {above}"
                )
        return None


def _mode(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"


def _unique(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(paths))
