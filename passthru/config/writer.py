"""Applying an edit to the config file safely: locked, validated, atomic, permissions kept.

* An exclusive ``flock`` on a sidecar ``.<name>.lock`` beside the file is held from reading to
  renaming, so two concurrent edits run one after the other and neither is lost. (The config
  itself is not locked: it is replaced by a rename, which would orphan a lock held on it.)
* The edited text is validated with :func:`load_config_text` before anything is written; a
  refused edit leaves the file byte-for-byte as it was.
* The new text is written to a temporary file in the same directory, fsynced, given the old
  file's mode and owner, and renamed over the old one, so a running Passthru (or a reload) only
  ever sees the old or the new file. A symlinked config (Kubernetes ``..data``) is edited at
  its target so the link stays a link.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from passthru.config.errors import ConfigErrors
from passthru.config.layout import EditError
from passthru.config.loader import KnownProtocols, load_config_text


class EditRefused(Exception):
    """The edit was not made (and the file not touched); the message says why."""


@dataclass(frozen=True)
class EditOutcome:
    path: Path
    before: str
    after: str
    written: bool

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        name = str(self.path)
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True), self.after.splitlines(keepends=True), name, f"{name} (edited)"
        )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the exclusive edit lock for ``path`` (blocks while another edit holds it)."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def edit_config(
    path: str | Path,
    edit: Callable[[str], str],
    *,
    known_protocols: KnownProtocols | None = None,
    dry_run: bool = False,
) -> EditOutcome:
    """Read ``path``, apply ``edit`` to its text, validate, and (unless ``dry_run``) write it.

    Raises :class:`EditRefused` when the edit cannot be made or its result is not a valid config.
    """
    shown = Path(path)
    target = Path(os.path.realpath(shown))
    with contextlib.nullcontext() if dry_run else locked(target):  # a dry run writes nothing: no lock
        try:
            before = target.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EditRefused(f"cannot read {shown}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            after = edit(before)
        except EditError as exc:
            raise EditRefused(f"{exc}; {shown} left unchanged") from None
        if after != before:
            _validate(shown, before, after, known_protocols)
            if not dry_run:
                _replace(target, after)
    return EditOutcome(shown, before, after, written=after != before and not dry_run)


def _validate(path: Path, before: str, after: str, known_protocols: KnownProtocols | None) -> None:
    try:
        load_config_text(after, path, known_protocols)
    except ConfigErrors as errors:
        try:
            load_config_text(before, path, known_protocols)
        except ConfigErrors as old:
            raise EditRefused(f"{path} is not valid now; fix it first (it was left unchanged):\n{old}") from None
        raise EditRefused(
            f"the edit would make the config invalid, so {path} was left unchanged "
            f"(positions are in the edited text):\n{errors}"
        ) from None


def _replace(target: Path, text: str) -> None:
    """Atomically replace ``target`` with ``text``, keeping its mode and (when allowed) owner."""
    info = target.stat()
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fchmod(out.fileno(), info.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):
                os.fchown(out.fileno(), info.st_uid, info.st_gid)
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
