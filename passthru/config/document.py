"""Reading YAML with ruamel's round-trip loader, and where each node sits in the file.

The round-trip loader keeps line/column for every mapping key, mapping value and sequence item,
which is what lets every config error name its exact place. The editing commands compose the
text with the same loader (``layout.py``), so they and the validator read the file identically.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from passthru.config.errors import ConfigError, ConfigErrors

Pos = tuple[int, int]
"""A 1-based (line, column)."""


def round_trip_yaml() -> YAML:
    """A ruamel round-trip instance: keeps comments, quoting and positions of every node."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def parse_document(text: str, path: str | Path) -> Any:
    """Parse ``text``; YAML syntax errors become ConfigErrors at the position ruamel reports."""
    try:
        return round_trip_yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigErrors([ConfigError(path, line, column, f"YAML syntax error: {problem}")]) from None
    except YAMLError as exc:
        raise ConfigErrors([ConfigError(path, 1, 1, f"YAML error: {exc}")]) from None


@dataclass(frozen=True)
class Node:
    """A YAML value with its position and a readable name (``routes[2].match``) for messages."""

    value: Any
    pos: Pos
    where: str

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, CommentedMap)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, CommentedSeq)

    def key_pos(self, key: object) -> Pos:
        line, column = self.value.lc.key(key)
        return line + 1, column + 1

    def child(self, key: str) -> Node | None:
        """The value under ``key`` of a mapping node, or None when the key is absent."""
        if key not in self.value:
            return None
        value = self.value[key]
        # A null value has no position of its own (ruamel points past it): use the key's.
        pos = self.key_pos(key) if value is None else _plus_one(self.value.lc.value(key))
        return Node(value, pos, f"{self.where}.{key}" if self.where else str(key))

    def items(self) -> Iterator[Node]:
        """The items of a sequence node."""
        for index, value in enumerate(self.value):
            yield Node(value, _plus_one(self.value.lc.item(index)), f"{self.where}[{index + 1}]")

    def as_list(self) -> list[Node]:
        """A sequence's items, or this node alone: for keys that take "one or a list"."""
        return list(self.items()) if self.is_sequence else [self]


def _plus_one(pos: tuple[int, int]) -> Pos:
    return pos[0] + 1, pos[1] + 1
