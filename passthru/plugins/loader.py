"""Turn one user file into an :class:`Identifier`: read, compile, execute in isolation, validate.

The same code serves the live loader (``store.py``) and ``passthru identifiers test``, so a file
that passes the command behaves the same in the server. Samples are run elsewhere
(``samples.py``); this module only answers "is this a well-formed identifier file".

Isolation: the file runs in a fresh module object under a private, content-derived name
(``_passthru_user_<stem>_<digest>_<n>``), never under its own stem, so ``identifiers/json.py`` does
not shadow the stdlib and two versions of one file never share globals. The module is in
``sys.modules`` while it serves (dataclasses and pickling look a module up there) and is dropped
when it is replaced (:func:`forget`). ``__name__`` is not ``"__main__"``, so a file may keep a
``if __name__ == "__main__":`` block for its own experiments.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType

from passthru.identify.base import USER_PRECEDENCE, FieldKind, Identifier
from passthru.plugins.errors import LoadError, describe, user_line
from passthru.plugins.timelimit import Overrun, TimeLimit

NAME_PATTERN = re.compile(r"[a-z0-9_-]+\Z")
SAMPLE_KINDS = ("match", "no_match")
#: How long the module body may run (imports included) before the load is abandoned.
IMPORT_BUDGET = 1.0
_versions = itertools.count(1)  # module names stay unique even for identical files


@dataclass(frozen=True)
class Source:
    """The exact bytes that were read, so what is hashed is what runs."""

    path: Path
    data: bytes
    digest: str

    @property
    def filename(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class Loaded:
    identifier: Identifier
    module_name: str
    digest: str
    lines: dict[str, int]  # where top-level names are bound, for messages about them

    def line_of(self, name: str) -> int | None:
        return self.lines.get(name)


def candidates(directory: Path) -> list[Path]:
    """The identifier files of a directory, sorted: ``*.py`` at the top level, following symlinks.

    Names starting with ``.`` or ``_`` are skipped: editors' lock and temporary files
    (``.#foo.py``), Kubernetes' ``..data`` entries, and helpers a user keeps beside their files.
    A missing directory has no files (it is optional).
    """
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if p.suffix == ".py" and not p.name.startswith((".", "_")) and p.is_file())


def read_source(path: Path) -> Source:
    """Read a file (following symlinks, as ConfigMap mounts need). Raises ``OSError``."""
    data = path.read_bytes()
    return Source(path, data, hashlib.sha256(data).hexdigest())


def load(source: Source, limit: TimeLimit, import_budget: float = IMPORT_BUDGET) -> Loaded:
    """Compile and execute ``source``, then build its identifier. Raises :class:`LoadError`."""
    tree, code = _compile(source)
    lines = _definition_lines(tree)
    module = _execute(source, code, limit, import_budget)
    try:
        identifier = _identifier(source, module, lines)
    except LoadError:
        forget(module.__name__)
        raise
    return Loaded(identifier, module.__name__, source.digest, lines)


def forget(module_name: str) -> None:
    """Drop a version that no longer serves (or never did) from ``sys.modules``."""
    sys.modules.pop(module_name, None)


def _compile(source: Source) -> tuple[ast.Module, CodeType]:
    """Parse (for the lines of top-level names) and compile; ``return`` at top level and the
    like are only found by the compiler, so both steps report as syntax errors."""
    try:
        tree = ast.parse(source.data, source.filename)
        return tree, compile(tree, source.filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise LoadError(source.filename, exc.lineno, f"SyntaxError: {exc.msg}") from None
    except ValueError as exc:  # null bytes, on versions that raise ValueError for them
        raise LoadError(source.filename, None, f"cannot compile: {exc}") from None


def _definition_lines(tree: ast.Module) -> dict[str, int]:
    """Where the top-level names are bound, so a bad ``NAME`` or ``SAMPLES`` points at its line."""
    lines: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            lines[node.name] = node.lineno
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    lines[target.id] = node.lineno
    return lines


def _execute(source: Source, code: CodeType, limit: TimeLimit, budget: float) -> ModuleType:
    filename = source.filename
    stem = re.sub(r"\W", "_", source.path.stem)
    module = ModuleType(f"_passthru_user_{stem}_{source.digest[:12]}_{next(_versions)}")
    module.__file__ = filename
    sys.modules[module.__name__] = module

    def run_body(code: CodeType) -> None:
        exec(code, vars(module))

    try:
        limit.call(run_body, code, budget)
    except Overrun as exc:
        forget(module.__name__)
        raise LoadError(
            filename, user_line(exc, filename), f"took longer than {budget:g} s to import (a loop at top level?)"
        ) from None
    except (Exception, SystemExit) as exc:
        forget(module.__name__)
        raise LoadError(filename, user_line(exc, filename), f"{describe(exc)} (while importing)") from None
    except BaseException:
        forget(module.__name__)
        raise
    return module


def _identifier(source: Source, module: ModuleType, lines: dict[str, int]) -> Identifier:
    filename = source.filename
    ns = vars(module)

    def fail(what: str, message: str) -> LoadError:
        return LoadError(filename, lines.get(what), message)

    name = ns.get("NAME", source.path.stem)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        origin = "NAME" if "NAME" in ns else "the file name (no NAME set)"
        raise fail("NAME", f"protocol name {name!r} from {origin} must be lower case letters, digits, '_' or '-'")
    identify = ns.get("identify")
    if identify is None:
        raise fail("identify", "defines no identify(data) function")
    if not callable(identify):
        raise fail("identify", f"identify is a {type(identify).__name__}, not a function")
    samples = _samples(ns.get("SAMPLES"), lambda message: fail("SAMPLES", message))
    fields = _fields(ns.get("FIELDS"), lambda message: fail("FIELDS", message))
    description = ns.get("DESCRIPTION") or (module.__doc__ or "").strip().split("\n")[0]
    return Identifier(
        name=name,
        identify=identify,
        precedence=USER_PRECEDENCE,
        source=filename,
        samples_match=samples["match"],
        samples_no_match=samples["no_match"],
        fields=fields,
        description=str(description),
        trusted=False,
    )


def _fields(value: object, fail: Callable[[str], LoadError]) -> dict[str, FieldKind] | None:
    """``FIELDS``: absent (routes may name any key), a list of names (text fields), or a dict
    of name to kind (``"host"``, ``"number"``, ``"text"``)."""
    if value is None:
        return None
    kinds = ", ".join(repr(k.value) for k in FieldKind)
    if isinstance(value, Mapping):
        declared: dict[str, FieldKind] = {}
        for name, kind in value.items():
            if not isinstance(name, str):
                raise fail(f"FIELDS keys are field names (strings), not {type(name).__name__}")
            try:
                declared[name] = FieldKind(kind)
            except ValueError:
                raise fail(f"FIELDS[{name!r}] is {kind!r}; a field kind is one of {kinds}") from None
        return declared
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__") or not all(isinstance(f, str) for f in value):
        raise fail(f'FIELDS must be a list of field names or a dict like {{"sni": "host"}} (kinds: {kinds})')
    return dict.fromkeys(value, FieldKind.TEXT)


def _samples(value: object, fail: Callable[[str], LoadError]) -> dict[str, tuple[bytes, ...]]:
    found: dict[str, tuple[bytes, ...]] = {kind: () for kind in SAMPLE_KINDS}
    if value is None:
        return found
    if not isinstance(value, Mapping):
        raise fail(f'SAMPLES must be a dict like {{"match": [...], "no_match": [...]}}, not {type(value).__name__}')
    unknown = sorted(str(k) for k in value if k not in SAMPLE_KINDS)
    if unknown:
        raise fail(f"SAMPLES has unknown keys {unknown}; use 'match' and 'no_match'")
    for kind, items in value.items():
        if isinstance(items, bytes | bytearray | str) or not hasattr(items, "__iter__"):
            raise fail(f"SAMPLES[{kind!r}] must be a list of bytes")
        converted = []
        for index, item in enumerate(items):
            if not isinstance(item, bytes | bytearray | memoryview):
                raise fail(f"SAMPLES[{kind!r}][{index}] is {type(item).__name__}; samples are bytes (b'...')")
            converted.append(bytes(item))
        found[kind] = tuple(converted)
    return found
