"""The user identifiers of one directory: which version of each file serves, and the swap.

State lives in the gevent hub's thread only (loads, the watcher's callbacks and the guard all run
there), so there are no locks. Readers take :meth:`UserIdentifiers.current`, an immutable tuple
that is replaced by a plain attribute rebind: a connection that took the old tuple keeps using
the old versions until it is done; new connections get the new one.

A file's new content serves only after it compiled, imported, defined a valid identifier and
passed its samples; until then (and if it never does) the previous good version keeps serving.
Content is identified by its SHA-256, so an unchanged file (a second event for the same save, a
``touch``) is never loaded twice.

StrictModes (``strictmodes.py``): a file that any local user could change -- it, its symlink
target, the identifiers directory or the directory it really lives in is world-writable -- is
refused (logged with the file name, shown in ``last_error``; an earlier version keeps serving),
and a group-writable one loads with a warning. Its content is loaded once the modes are fixed.

Names: two files with the same ``NAME`` cannot both serve; the one already serving (at start-up,
the first in file-name order) keeps it and the other is rejected, and retried when the name is
freed. A user file may take a built-in's name: it replaces that built-in (DESIGN.md: user
identifiers win), with a warning in the log, and :meth:`UserIdentifiers.combined` leaves that
built-in out.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from passthru import metrics
from passthru.identify.base import Fields, Identifier
from passthru.identify.registry import BUILTINS, builtin_names
from passthru.plugins.containment import ConnectionGuard, Containment
from passthru.plugins.errors import IdentifierFailed, LoadError, located
from passthru.plugins.loader import Loaded, Source, candidates, forget, load, read_source
from passthru.plugins.samples import first_failure, run_samples, sample_text
from passthru.plugins.strictmodes import ModeCheck, check_file
from passthru.watching import DirectoryWatcher

ACTIVE, REJECTED, DISABLED = "active", "rejected", "disabled"


@dataclass(frozen=True)
class IdentifierStatus:
    """One file, as ``passthru identifiers list`` shows it.

    ``status``: ``active`` (its latest content serves), ``rejected`` (its latest content failed
    to load; ``serving`` says whether an earlier version still serves), ``disabled`` (it kept
    failing at run time; it serves again once the file changes and loads).
    """

    name: str
    source: str
    status: str
    last_error: str | None
    serving: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _File:
    path: Path
    name: str
    serving: Loaded | None = None
    attempted: str | None = None  # digest of the latest content tried
    rejected: bool = False
    disabled: bool = False
    last_error: str | None = None
    blocked_by: str | None = None  # the NAME another file holds
    mode_warning: str | None = None  # the StrictModes warning last logged, so it is logged once
    history: deque[str] = field(default_factory=lambda: deque(maxlen=32))  # digests tried, oldest first

    @property
    def in_service(self) -> bool:
        return self.serving is not None and not self.disabled

    def status(self) -> IdentifierStatus:
        state = REJECTED if self.rejected else DISABLED if self.disabled else ACTIVE
        return IdentifierStatus(self.name, str(self.path), state, self.last_error, self.in_service)


class UserIdentifiers:
    """Loads ``*.py`` identifiers from ``directory``, hot-swaps them, and contains them at run time.

    ``budget``: seconds one ``identify()`` call may run. ``connection_budget``: seconds all user
    identifiers together may use on one connection. ``failure_limit``: consecutive failures that
    disable a file until it changes. ``debounce``/``poll_interval``: see ``watcher.py``.
    ``strict_modes``: refuse files others could write (see ``strictmodes.py``); on by default.
    """

    def __init__(
        self,
        directory: Path,
        *,
        budget: float = 0.05,
        connection_budget: float = 0.25,
        failure_limit: int = 5,
        debounce: float = 0.15,
        poll_interval: float = 2.0,
        log: logging.Logger | None = None,
        strict_modes: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.strict_modes = strict_modes
        self.connection_budget = connection_budget
        self.log = log or logging.getLogger("passthru.plugins")
        self.containment = Containment(budget, failure_limit, self._disable, self.log)
        self._debounce = debounce
        self._poll_interval = poll_interval
        self._files: dict[Path, _File] = {}
        self._snapshot: tuple[Identifier, ...] = ()
        self._combined: tuple[tuple[Identifier, ...], tuple[Identifier, ...] | None, tuple[Identifier, ...]] | None = (
            None
        )
        self._callbacks: list[Callable[[], None]] = []
        self._watcher: DirectoryWatcher | None = None

    # -- reading (any greenlet) ------------------------------------------------------------

    def current(self) -> tuple[Identifier, ...]:
        """The identifiers serving now, sorted by name. Immutable; replaced as a whole."""
        return self._snapshot

    def names(self) -> frozenset[str]:
        return frozenset(i.name for i in self._snapshot)

    def combined(self, builtins: Iterable[Identifier] = BUILTINS) -> tuple[Identifier, ...]:
        """The user identifiers plus the built-ins whose names no user file took."""
        snapshot = self._snapshot
        cached = self._combined
        if cached is not None and cached[0] is snapshot and cached[1] is builtins:
            return cached[2]  # every connection asks: the same objects as last time
        given = builtins if isinstance(builtins, tuple) else None  # a tuple cannot change
        builtins = tuple(builtins)
        taken = {i.name for i in snapshot}
        result = snapshot + tuple(b for b in builtins if b.name not in taken)
        self._combined = (snapshot, given, result)
        return result

    def statuses(self) -> list[IdentifierStatus]:
        return [f.status() for f in sorted(self._files.values(), key=lambda f: f.path)]

    def versions(self) -> dict[str, str]:
        """SHA-256 of the content serving now, by file (as ``IdentifierStatus.source``)."""
        return {str(f.path): f.serving.digest for f in self._files.values() if f.serving is not None}

    def load_history(self, path: Path) -> list[str]:
        """SHA-256 of each content of ``path`` that was loaded (tried), oldest first, last 32.

        Tests use it to check that a save is loaded exactly once and that no other content was.
        """
        file = self._files.get(Path(path))
        return list(file.history) if file else []

    # -- calling -------------------------------------------------------------------------------

    def guard(self, identifier: Identifier, data: bytes) -> Fields | int | None:
        """The engine's guard: contains one call (per-call budget, failure counting)."""
        return self.containment.call(identifier, data)

    def connection_guard(self) -> ConnectionGuard:
        """A guard for one connection that also bounds the total time spent in user code."""
        return ConnectionGuard(self.containment, self.connection_budget)

    # -- loading (hub thread) ------------------------------------------------------------------

    def load_all(self) -> None:
        """Load every identifier file now (start-up). A missing directory means none."""
        if not self.directory.is_dir():
            self.log.info("no user identifiers: %s is not a directory", self.directory)
        self.rescan()

    def rescan(self) -> None:
        """Bring the loaded versions in line with the directory, then publish one snapshot."""
        present = candidates(self.directory)
        for path in sorted(set(self._files) - set(present)):
            self._remove(path)
        for path in present:
            self._refresh(path)
        for file in list(self._files.values()):
            if file.blocked_by and self._holder(file.blocked_by, file) is None:
                self._refresh(file.path, force=True)
        self._publish()

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (in the hub thread) after each swap of :meth:`current`."""
        self._callbacks.append(callback)

    def start_watching(self) -> None:
        """Follow the directory from now on. Call from the gevent hub's thread."""
        if self._watcher is None:
            self._watcher = DirectoryWatcher(
                self.directory,
                self.rescan,
                debounce=self._debounce,
                poll_interval=self._poll_interval,
                log=self.log,
                relevant=lambda name: name.endswith(".py"),
                files=candidates,
            )
            self._watcher.start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def _refresh(self, path: Path, force: bool = False) -> None:
        try:
            modes = check_file(path, self.directory) if self.strict_modes else ModeCheck(None)
            source = None if modes.refusal else read_source(path)
        except FileNotFoundError:  # removed between listing and reading
            if path in self._files:
                self._remove(path)
            return
        except OSError as exc:
            self._reject(self._file(path), path.stem, LoadError(str(path), None, f"cannot read: {exc.strerror or exc}"))
            return
        file = self._file(path)
        self._warn_modes(file, modes.warnings)
        if source is None:
            self._refuse(file, f"refused: {modes.refusal} (StrictModes)")
            return
        if source.digest == file.attempted and not force:
            return
        self._try(file, source)

    def _warn_modes(self, file: _File, warnings: tuple[str, ...]) -> None:
        text = "; ".join(warnings) or None
        if text != file.mode_warning:
            file.mode_warning = text
            if text:
                self.log.warning(
                    "%s: %s: members of that group can change the code Passthru runs "
                    "(loaded; chmod g-w to stop this warning)",
                    file.path,
                    text,
                )

    def _refuse(self, file: _File, message: str) -> None:
        """Not loaded because of its modes; the same content loads once they are fixed."""
        file.attempted = None
        error = LoadError(str(file.path), None, message)
        if file.rejected and file.last_error == str(error):
            return  # said already: a rescan for another file's change must not repeat it
        self._reject(file, None, error)

    def _file(self, path: Path) -> _File:
        if path not in self._files:
            self._files[path] = _File(path, path.stem)
        return self._files[path]

    def _try(self, file: _File, source: Source) -> None:
        file.history.append(source.digest)
        file.attempted = source.digest
        file.blocked_by = None
        try:
            loaded = load(source, self.containment.limit)
        except LoadError as error:
            self._reject(file, None, error)
            return
        error = self._name_problem(file, loaded) or self._sample_problem(loaded)
        if error is not None:
            forget(loaded.module_name)
            self._reject(file, loaded.identifier.name, error)
            return
        self._swap_in(file, loaded)

    def _name_problem(self, file: _File, loaded: Loaded) -> LoadError | None:
        identifier = loaded.identifier
        holder = self._holder(identifier.name, file)
        if holder is not None:
            file.blocked_by = identifier.name
            return LoadError(
                str(file.path),
                loaded.line_of("NAME"),
                f"NAME {identifier.name!r} is already used by {holder.path}; give one of them another NAME",
            )
        if identifier.name in builtin_names():
            self.log.warning(
                "%s: NAME %r replaces the built-in %r identifier (user identifiers win)",
                file.path,
                identifier.name,
                identifier.name,
            )
        return None

    def _sample_problem(self, loaded: Loaded) -> LoadError | None:
        identifier = loaded.identifier
        results = run_samples(identifier, lambda i, data: self.containment.run(i, data, self.containment.budget))
        failed = first_failure(results)
        if failed is None:
            return None
        line = failed.line or loaded.line_of("SAMPLES")
        others = sum(1 for r in results if not r.ok) - 1
        more = f" (and {others} more failing)" if others else ""
        message = f"sample {failed.label} {sample_text(failed.data)}: {failed.problem}{more}"
        return LoadError(identifier.source, line, message)

    def _holder(self, name: str, other_than: _File) -> _File | None:
        """The file (other than ``other_than``) whose serving version has ``name``."""
        for file in self._files.values():
            if file is not other_than and file.serving is not None and file.serving.identifier.name == name:
                return file
        return None

    def _swap_in(self, file: _File, loaded: Loaded) -> None:
        old = file.serving
        if old is not None:
            self.containment.release(old.identifier)
            forget(old.module_name)
        self.containment.watch(loaded.identifier)
        file.serving = loaded
        file.name = loaded.identifier.name
        file.rejected = file.disabled = False
        file.last_error = None
        samples = len(loaded.identifier.samples_match) + len(loaded.identifier.samples_no_match)
        verb = "reloaded" if old is not None else "loaded"
        self.log.info("%s: %s identifier %r (%d samples passed)", file.path, verb, file.name, samples)

    def _reject(self, file: _File, name: str | None, error: LoadError) -> None:
        file.rejected = True
        file.last_error = str(error)
        if file.serving is None and name:
            file.name = name
        if file.in_service:
            outcome = f"still serving the previous version of {file.name!r}"
        elif file.serving is not None:
            outcome = f"{file.name!r} stays disabled"
        else:
            outcome = "not loaded"
        self.log.error("%s (%s)", error, outcome)
        metrics.identifier_error(file.name or file.path.stem, "load")

    def _remove(self, path: Path) -> None:
        file = self._files.pop(path)
        if file.serving is None:
            self.log.info("%s: removed (it was not loaded)", path)
            return
        self.containment.release(file.serving.identifier)
        forget(file.serving.module_name)
        self.log.warning(
            "%s: removed; protocol %r is no longer identified and routes naming it will not match", path, file.name
        )

    def _disable(self, identifier: Identifier, error: IdentifierFailed) -> None:
        """Containment's verdict: this version keeps failing. Take it out until the file changes."""
        for file in self._files.values():
            if file.serving is not None and file.serving.identifier is identifier:
                file.disabled = True
                file.last_error = str(error)
                metrics.identifier_error(file.name or file.path.stem, "disabled")
                self.log.error(
                    "%s",
                    located(
                        str(file.path),
                        error.line,
                        f"identifier {file.name!r} disabled after {self.containment.failure_limit} failures in a row "
                        f"(last: {error.message}); save a fixed version to re-enable it",
                    ),
                )
                self._publish()
                return

    def _publish(self) -> None:
        serving = tuple(
            sorted((f.serving.identifier for f in self._files.values() if f.in_service and f.serving), key=_name)
        )
        if [id(i) for i in serving] == [id(i) for i in self._snapshot]:
            return
        self._snapshot = serving
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:
                self.log.exception("user identifiers: on_change callback %r failed", callback)


def _name(identifier: Identifier) -> str:
    return identifier.name
