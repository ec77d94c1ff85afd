"""Config errors that point at the file, line and column, and say what would be valid.

Every problem found while loading is a :class:`ConfigError`; the loader collects all of them in
one pass and raises them together as :class:`ConfigErrors`, so a user fixes a file in one round
instead of one error per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path


class ConfigError(Exception):
    """One problem at ``path:line:column`` (1-based). ``line == 0`` means the whole file
    (it could not be read at all), and the position is then left out of the message."""

    def __init__(self, path: str | Path, line: int, column: int, message: str) -> None:
        super().__init__(path, line, column, message)
        self.path = Path(path)
        self.line = line
        self.column = column
        self.message = message

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.column}" if self.line else str(self.path)

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigError({str(self.path)!r}, {self.line}, {self.column}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfigError):
            return NotImplemented
        return self.args == other.args

    def __hash__(self) -> int:
        return hash(self.args)


class ConfigErrors(Exception):
    """All the problems found in one config, in file order; ``str()`` gives one per line."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.line, e.column))
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    def __iter__(self) -> Iterator[ConfigError]:
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)
