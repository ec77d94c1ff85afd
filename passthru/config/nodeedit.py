"""Text edits of one node: replace a value, add a key to a mapping, remove a key.

Each function takes the text and nodes composed from that same text, changes only the bytes of
the node concerned (and the line or separator that holds it) and returns the new text. Block and
flow mappings are both handled; a replaced value keeps the style of the old one where the new
value allows (quote style of a scalar, flow or block style of a collection).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from passthru.config.layout import EditError, Lines, colon_after, content_end, is_block, is_empty_scalar, mapping_get
from passthru.config.render import block, inline, is_collection, scalar_like

INDENT_STEP = 2
_TRAILING_COMMENT = re.compile(r"( +)#")


def splice(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def splice_keeping_comment(text: str, start: int, end: int, new: str) -> str:
    """Like :func:`splice` for a value on one line; a comment after it keeps its column
    (the spaces before it shrink or grow, never below one), as an editor would keep it."""
    after = _TRAILING_COMMENT.match(text, end)
    if after is None or "\n" in new:
        return splice(text, start, end, new)
    column = end + len(after.group(1))  # where the comment starts now
    spaces = max(1, column - start - len(new))
    return text[:start] + new + " " * spaces + text[after.end(1) :]


def replace_value(text: str, key: Node, node: Node, value: object) -> str:
    """Put ``value`` where ``node`` (the value under ``key``) is."""
    same_kind = isinstance(node, MappingNode) == isinstance(value, Mapping) and is_collection(value)
    if is_block(node) and same_kind:
        lines = Lines(text)
        new = block(value, node.start_mark.column, lines.newline)  # type: ignore[arg-type]
        return splice(text, node.start_mark.index, content_end(text, node), new)
    if is_empty_scalar(node):  # ``key:`` alone; its (empty) span reaches into the next line
        at = colon_after(text, key)
        return splice_keeping_comment(text, at, at, " " + inline(value))
    if is_block(node) or (isinstance(node, ScalarNode) and node.style in ("|", ">")):
        return splice_keeping_comment(text, colon_after(text, key), content_end(text, node), " " + inline(value))
    if isinstance(node, ScalarNode) and not is_collection(value):
        return splice_keeping_comment(text, node.start_mark.index, node.end_mark.index, scalar_like(value, node.style))
    return splice_keeping_comment(text, node.start_mark.index, node.end_mark.index, inline(value))


def add_key(text: str, mapping: MappingNode, keys: Sequence[str], value: object) -> str:
    """Add ``keys[0]`` to ``mapping``; further keys become nested mappings down to ``value``
    (``config set limits.identify_bytes 32KiB`` when there is no ``limits`` yet)."""
    nested: object = value
    for key in reversed(keys[1:]):
        nested = {key: nested}
    if mapping.flow_style:
        return _add_flow(text, mapping, keys[0], nested)
    lines = Lines(text)
    column = mapping.start_mark.column  # a block mapping always has an entry: an empty one is {}
    rendered = [" " * (column + INDENT_STEP * depth) + f"{inline(k)}:" for depth, k in enumerate(keys[:-1])]
    rendered.append(" " * (column + INDENT_STEP * (len(keys) - 1)) + f"{inline(keys[-1])}: {inline(value)}")
    at = lines.end_of_content(content_end(text, mapping) - 1, deeper_than=column)
    lead = "" if at == 0 or text[at - 1] == "\n" else lines.newline
    return splice(text, at, at, lead + lines.newline.join(rendered) + lines.newline)


def _add_flow(text: str, mapping: MappingNode, key: str, value: object) -> str:
    item = f"{inline(key)}: {inline(value)}"
    if not mapping.value:
        close = mapping.end_mark.index - 1
        return splice(text, close, close, item)
    at = content_end(text, mapping.value[-1][1])
    return splice(text, at, at, ", " + item)


def remove_key(text: str, mapping: MappingNode, key: str) -> str:
    """Remove ``key`` and its value (its lines, in a block mapping)."""
    found = mapping_get(mapping, key)
    if found is None:
        return text
    key_node, value_node = found
    index = [k for k, _ in mapping.value].index(key_node)
    end = content_end(text, key_node if is_empty_scalar(value_node) else value_node)
    if mapping.flow_style:
        if index + 1 < len(mapping.value):
            return splice(text, key_node.start_mark.index, mapping.value[index + 1][0].start_mark.index, "")
        if index > 0:
            previous = mapping.value[index - 1]
            start = content_end(text, previous[0] if is_empty_scalar(previous[1]) else previous[1])
            return splice(text, start, end, "")
        return splice(text, key_node.start_mark.index, end, "")
    lines = Lines(text)
    start = lines.start(key_node.start_mark.index)
    if text[start : key_node.start_mark.index].strip():
        raise EditError(f"cannot remove '{key}': it shares its line with another entry")
    return splice(text, start, lines.end_of_content(end - 1, deeper_than=key_node.start_mark.column), "")
