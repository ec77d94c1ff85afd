"""Where things are in a YAML file's text: exact spans of nodes, lines, and route entries.

Edits are made on the text, not by re-dumping a document, so that every byte outside the
edited node stays as it was. ruamel's composer gives each node its start and end offsets; block
collections end where the next token starts (after any comments and blank lines), so
:func:`content_end` finds where their content really stops.

An entry of a block sequence (:class:`Entry`) owns the comment lines directly above its ``-``
that are indented no deeper than the dash (no blank line between), and the comment lines
directly below it that are indented deeper than the dash (they are inside the entry). Blank
lines between entries belong to no entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from passthru.config.document import round_trip_yaml


class EditError(Exception):
    """An edit that cannot be made (unknown route, a key that is not a mapping, ...)."""


def compose(text: str) -> Node | None:
    """The node tree of ``text`` with positions; None for an empty document."""
    try:
        return round_trip_yaml().compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise EditError(f"the config is not valid YAML{where}: {exc.problem}") from None
    except YAMLError as exc:
        raise EditError(f"the config is not valid YAML: {exc}") from None


def is_block(node: Node) -> bool:
    return isinstance(node, MappingNode | SequenceNode) and not node.flow_style


def is_empty_scalar(node: Node) -> bool:
    """A value that is not written at all (``key:`` with nothing after it)."""
    return isinstance(node, ScalarNode) and node.start_mark.index == node.end_mark.index


def content_end(text: str, node: Node) -> int:
    """The offset just past the last character of ``node``'s own content."""
    if isinstance(node, ScalarNode):
        if node.style in ("|", ">"):  # a block scalar's span takes the blank lines after it
            return len(text[: node.end_mark.index].rstrip())
        return node.end_mark.index
    if not is_block(node) or not node.value:
        return node.end_mark.index
    if isinstance(node, SequenceNode):
        return content_end(text, node.value[-1])
    key, value = node.value[-1]
    return content_end(text, key) if is_empty_scalar(value) else content_end(text, value)


def mapping_get(node: Node, key: str) -> tuple[Node, Node] | None:
    """``(key_node, value_node)`` for ``key`` in a mapping node."""
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def colon_after(text: str, key: Node) -> int:
    """The offset just past the ``:`` that follows a mapping key."""
    return text.index(":", key.end_mark.index) + 1


class Lines:
    """Line arithmetic over one text (offsets are character indexes into ``text``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newline = "\r\n" if "\r\n" in text else "\n"

    def start(self, index: int) -> int:
        """Start of the line holding ``index``."""
        return self.text.rfind("\n", 0, index) + 1

    def after(self, index: int) -> int:
        """Start of the line after the one holding ``index`` (or the end of the text)."""
        end = self.text.find("\n", index)
        return len(self.text) if end < 0 else end + 1

    def previous(self, line_start: int) -> int | None:
        return self.start(line_start - 1) if line_start > 0 else None

    def content(self, line_start: int) -> str:
        return self.text[line_start : self.after(line_start)].rstrip("\r\n")

    def indent(self, line_start: int) -> int:
        line = self.content(line_start)
        return len(line) - len(line.lstrip(" "))

    def is_comment(self, line_start: int) -> bool:
        return self.content(line_start).lstrip().startswith("#")

    def is_blank(self, line_start: int) -> bool:
        return line_start < len(self.text) and not self.content(line_start).strip()

    def end_of_content(self, index: int, deeper_than: int) -> int:
        """Start of the line after ``index``'s, extended over the comment lines that follow
        directly and are indented more than ``deeper_than`` (they belong to the content above)."""
        end = self.after(index)
        while end < len(self.text) and self.is_comment(end) and self.indent(end) > deeper_than:
            end = self.after(end)
        return end


@dataclass(frozen=True)
class Entry:
    """One block-sequence entry: ``text[start:end]`` is all its lines, comments included."""

    start: int  # first line: its leading comment, or the dash line
    dash: int  # offset of the ``-``
    end: int  # just past its last line
    column: int  # column of the ``-``
    content_column: int  # column where the entry's content starts (``name:`` of a route)
    node: Node


def entries(lines: Lines, seq: SequenceNode) -> list[Entry]:
    """The entries of a block sequence, with the comment lines that belong to each."""
    found = []
    text = lines.text
    for item in seq.value:
        dash = len(text[: item.start_mark.index].rstrip(" \t\r\n")) - 1
        if text[dash] != "-":
            raise EditError(f"unexpected layout near line {item.start_mark.line + 1}: expected '- '")
        dash_line = lines.start(dash)
        column = dash - dash_line
        start = dash_line
        above = lines.previous(start)
        while above is not None and lines.is_comment(above) and lines.indent(above) <= column:
            start, above = above, lines.previous(above)
        end = lines.end_of_content(content_end(text, item) - 1, deeper_than=column)
        found.append(Entry(start, dash, end, column, item.start_mark.column, item))
    return found
