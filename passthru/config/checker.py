"""Collecting config errors in one pass, with the shared checks every section needs.

Each section builder gets a :class:`Checker`, reports problems through it and carries on with
the next value (returning None for a value it could not build), so one run reports every
problem in the file. The helpers make every message say what would have been valid.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from passthru.config.document import Node, Pos
from passthru.config.errors import ConfigError, ConfigErrors

T = TypeVar("T")

SCALAR_TYPES = (str, int, float)


def closest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def one_of_text(choices: Iterable[str]) -> str:
    return ", ".join(choices)


def describe(value: object) -> str:
    """How a YAML value reads in a message: ``'abc'``, ``5``, ``a list``, ``a mapping``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if isinstance(value, str) else str(value)


class Checker:
    """The error list for one file, plus checks that report into it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.errors: list[ConfigError] = []

    def error(self, pos: Pos, message: str) -> None:
        self.errors.append(ConfigError(self.path, pos[0], pos[1], message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigErrors(self.errors)

    # -- shape checks -------------------------------------------------------------------------

    def mapping(self, node: Node, example: str = "") -> bool:
        if node.is_mapping:
            return True
        hint = f", e.g. {example}" if example else ""
        self.error(node.pos, f"{node.where} must be a mapping of keys to values{hint}, not {describe(node.value)}")
        return False

    def known_keys(self, node: Node, valid: Sequence[str], required: Collection[str] = ()) -> None:
        """Report unknown keys (naming the valid ones and the closest) and missing required ones."""
        where = f" in {node.where}" if node.where else ""
        for key in node.value:
            if key in valid:
                continue
            guess = closest(str(key), valid)
            suggestion = f"; did you mean '{guess}'?" if guess else ""
            self.error(node.key_pos(key), f"unknown key '{key}'{where} (valid: {one_of_text(valid)}){suggestion}")
        for key in required:
            if key not in node.value:
                self.error(node.pos, f"missing required key '{key}'{where}")

    def scalar(self, node: Node) -> str | None:
        """A scalar as text (``true``/``false`` for booleans); lists, mappings and null refused."""
        value = node.value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, SCALAR_TYPES):
            return str(value)
        self.error(node.pos, f"{node.where} must be a single value, not {describe(value)}")
        return None

    def text(self, node: Node, expected: str) -> str | None:
        if isinstance(node.value, str) and node.value:
            return str(node.value)
        self.error(node.pos, f"{node.where} must be {expected}, not {describe(node.value)}")
        return None

    def choice(self, node: Node, choices: Sequence[str]) -> str | None:
        if isinstance(node.value, str) and node.value in choices:
            return str(node.value)
        guess = closest(str(node.value), choices) if isinstance(node.value, str) else None
        suggestion = f"; did you mean '{guess}'?" if guess else ""
        self.error(node.pos, f"{node.where} is {describe(node.value)}; valid: {one_of_text(choices)}{suggestion}")
        return None

    def integer(self, node: Node, low: int, high: int | None = None) -> int | None:
        value = node.value
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
        if ok:
            return int(value)
        bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
        self.error(node.pos, f"{node.where} must be a whole number {bounds}, not {describe(value)}")
        return None

    def unique(self, seen: dict[str, int], name: str, line: int, pos: Pos, what: str) -> bool:
        """Record ``name`` (defined at ``line``) in ``seen``; report it if it was already there."""
        if name in seen:
            self.error(pos, f"duplicate {what} name '{name}' (first used at line {seen[name]})")
            return False
        seen[name] = line
        return True

    def converted(self, node: Node, convert: Callable[[Any], T]) -> T | None:
        """``convert(node.value)``; its ValueError message (which says what is valid) is reported."""
        try:
            return convert(node.value)
        except ValueError as exc:
            self.error(node.pos, f"{node.where}: {exc}")
            return None
