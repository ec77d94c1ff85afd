"""Comment-preserving edits of a config's text: routes (add, remove, move, set) and dotted keys.

Every function takes the file's text and returns the edited text; only the edited node's bytes
change (see ``layout.py`` for which comments belong to a route). Nothing is validated here: the
writer validates the result with the loader before anything reaches the disk.

Keys are dotted paths (``timeouts.identify``); inside a list a part is an index from 0 or, for
lists of named entries such as ``routes``, a name (``routes.web.balance``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from passthru.config.layout import (
    EditError,
    Entry,
    Lines,
    colon_after,
    compose,
    content_end,
    entries,
    is_block,
    is_empty_scalar,
    mapping_get,
)
from passthru.config.nodeedit import INDENT_STEP, add_key, remove_key, replace_value, splice
from passthru.config.render import block, inline, is_collection
from passthru.config.routes import ROUTE_KEYS

__all__ = [
    "ROUTE_KEYS",
    "EditError",
    "add_route",
    "get_key",
    "move_route",
    "remove_route",
    "route_names",
    "set_key",
    "set_route",
]


@dataclass(frozen=True)
class RouteList:
    """The ``routes`` block sequence as it sits in the text."""

    lines: Lines
    key: Node
    seq: SequenceNode | None  # None when ``routes:`` has no value
    entries: list[Entry]
    names: list[str | None]

    def index(self, name: str) -> int:
        if name not in self.names:
            known = ", ".join(n for n in self.names if n) or "none"
            raise EditError(f"no route named '{name}' (routes: {known})")
        return self.names.index(name)

    def gap(self) -> str:
        """The blank lines usually found between two routes (none with fewer than two)."""
        text = self.lines.text
        gaps = [text[a.end : b.start] for a, b in zip(self.entries, self.entries[1:], strict=False)]
        counts = Counter(g.count("\n") for g in gaps if not g.strip())
        return self.lines.newline * counts.most_common(1)[0][0] if counts else ""


def _root(text: str) -> MappingNode:
    root = compose(text)
    if not isinstance(root, MappingNode):
        raise EditError("the config is empty or not a mapping of keys to values")
    return root


def _routes(text: str) -> RouteList:
    found = mapping_get(_root(text), "routes")
    if found is None:
        raise EditError("the config has no 'routes' key")
    key, seq = found
    lines = Lines(text)
    if is_empty_scalar(seq):
        return RouteList(lines, key, None, [], [])
    if not isinstance(seq, SequenceNode):
        raise EditError("'routes' is not a list")
    if seq.flow_style and seq.value:
        raise EditError("'routes' is in flow style ([...]); route commands edit a block list (one '- ' per route)")
    found_entries = entries(lines, seq) if seq.value else []
    return RouteList(lines, key, seq, found_entries, [_name(e.node) for e in found_entries])


def _name(node: Node) -> str | None:
    found = mapping_get(node, "name") if isinstance(node, MappingNode) else None
    return found[1].value if found and isinstance(found[1], ScalarNode) else None


def route_names(text: str) -> list[str]:
    return [n for n in _routes(text).names if n is not None]


# -- routes --------------------------------------------------------------------------------------


def add_route(text: str, route: Mapping[str, object], *, before: str | None = None, after: str | None = None) -> str:
    """Insert ``route`` (keys from :data:`ROUTE_KEYS`) at the end, or before/after a named route.

    The new entry never lands between a route and the comment above it, and it is separated
    from its neighbours by the blank lines the file usually puts between routes.
    """
    routes = _routes(text)
    name = str(route["name"])
    if name in routes.names:
        raise EditError(f"a route named '{name}' already exists")
    position = _position(routes, before, after)
    return _insert(text, routes, _render_route(routes, route), position, routes.gap())


def remove_route(text: str, name: str) -> str:
    """Remove a route with the comments that belong to it and the blank lines that separated it."""
    routes = _routes(text)
    index, found = routes.index(name), routes.entries
    if len(found) == 1:  # the list becomes empty: write it as []
        text = splice(text, found[0].start, found[0].end, "")
        at = colon_after(text, routes.key)
        return splice(text, at, at, " []")
    if index + 1 < len(found):
        return splice(text, found[index].start, found[index + 1].start, "")
    return splice(text, found[index - 1].end, found[index].end, "")


def move_route(text: str, name: str, *, before: str | None = None, after: str | None = None) -> str:
    """Move a route, with its comments, before or after another one."""
    routes = _routes(text)
    entry = routes.entries[routes.index(name)]
    target = before or after
    if target is None:
        raise EditError("say where to move it: --before NAME or --after NAME")
    routes.index(target)
    if target == name:
        raise EditError("a route cannot be moved relative to itself")
    moved = text[entry.start : entry.end]
    moved += "" if moved.endswith("\n") else routes.lines.newline
    text = remove_route(text, name)
    remaining = _routes(text)
    return _insert(text, remaining, moved, _position(remaining, before, after), routes.gap())


def set_route(text: str, name: str, changes: Mapping[str, object]) -> str:
    """Set keys of a route (``to``, ``match``, ``balance``, ...); a value of None removes the key.

    A list of one address replaces a single address as a plain scalar, so ``to: 10.0.0.5:443``
    stays a scalar while ``to: [a, b]`` stays a list.
    """
    for key, value in changes.items():
        routes = _routes(text)
        item = routes.entries[routes.index(name)].node
        if not isinstance(item, MappingNode):
            raise EditError(f"route '{name}' is not a mapping")
        found = mapping_get(item, key)
        if value is None:
            text = remove_key(text, item, key)
        elif found is None:
            text = add_key(text, item, [key], value)
        else:
            text = replace_value(text, *found, _like(value, found[1]))
    return text


def _like(value: object, old: Node) -> object:
    single = isinstance(value, list | tuple) and len(value) == 1
    return value[0] if single and not isinstance(old, SequenceNode) else value  # type: ignore[index]


def _position(routes: RouteList, before: str | None, after: str | None) -> int:
    if before is not None and after is not None:
        raise EditError("give --before or --after, not both")
    if before is not None:
        return routes.index(before)
    if after is not None:
        return routes.index(after) + 1
    return len(routes.entries)


def _insert(text: str, routes: RouteList, entry_text: str, position: int, gap: str) -> str:
    found = routes.entries
    if not found:
        return _insert_first(text, routes, entry_text)
    if position < len(found):
        return splice(text, found[position].start, found[position].start, entry_text + gap)
    at = found[-1].end
    lead = "" if text[:at].endswith("\n") else routes.lines.newline
    return splice(text, at, at, lead + gap + entry_text)


def _insert_first(text: str, routes: RouteList, entry_text: str) -> str:
    """Into ``routes: []`` or an empty ``routes:``: the entry goes on the lines after the key."""
    if routes.seq is not None:  # "routes: []" -> "routes:"
        text = splice(text, colon_after(text, routes.key), routes.seq.end_mark.index, "")
    lines = Lines(text)
    at = lines.after(routes.key.start_mark.index)
    lead = "" if text[:at].endswith("\n") else lines.newline
    return splice(text, at, at, lead + entry_text)


def _render_route(routes: RouteList, route: Mapping[str, object]) -> str:
    """A new entry, indented like its neighbours, in their style for ``match`` and ``to``."""
    if routes.entries:
        dash, content = routes.entries[0].column, routes.entries[0].content_column
    else:
        dash = routes.key.start_mark.column + INDENT_STEP
        content = dash + 2
    newline = routes.lines.newline
    lines = []
    for key in (k for k in ROUTE_KEYS if route.get(k) is not None):
        value = route[key]
        block_offset = _block_style(routes, key) if is_collection(value) else None
        if block_offset is None:
            lines.append(" " * content + f"{key}: {inline(value)}")
        else:
            column = content + block_offset
            lines.append(" " * content + f"{key}:")
            lines.append(" " * column + block(value, column, newline))  # type: ignore[arg-type]
    lines[0] = " " * dash + "-" + " " * (content - dash - 1) + lines[0][content:]
    return newline.join(lines) + newline


def _block_style(routes: RouteList, key: str) -> int | None:
    """How the latest route that has a collection under ``key`` writes it: None for flow style,
    else the column offset of its items from the key."""
    for entry in reversed(routes.entries):
        found = mapping_get(entry.node, key) if isinstance(entry.node, MappingNode) else None
        if found and isinstance(found[1], MappingNode | SequenceNode):
            return found[1].start_mark.column - found[0].start_mark.column if is_block(found[1]) else None
    return None


# -- dotted keys ---------------------------------------------------------------------------------


def _parts(key: str) -> list[str]:
    parts = key.split(".")
    if not all(parts):
        raise EditError(f"invalid key {key!r}: use dotted names such as timeouts.identify")
    return parts


def _child(node: Node, part: str, where: str) -> tuple[Node | None, Node] | None:
    """One step down a path: a mapping key, or a list index / entry name."""
    if isinstance(node, MappingNode):
        return mapping_get(node, part)
    if isinstance(node, SequenceNode):
        if part.isdigit():
            return (None, node.value[int(part)]) if int(part) < len(node.value) else None
        named = [item for item in node.value if _name(item) == part]
        return (None, named[0]) if named else None
    raise EditError(f"'{where}' is a single value, not a mapping or list")


def get_key(text: str, key: str) -> str:
    """The value at ``key`` as written: a scalar's text, or a collection's YAML source."""
    node: Node = _root(text)
    parts = _parts(key)
    for i, part in enumerate(parts):
        found = _child(node, part, ".".join(parts[:i]))
        if found is None or is_empty_scalar(found[1]):
            raise EditError(f"'{key}' is not set in the config")
        node = found[1]
    if isinstance(node, ScalarNode) and node.style not in ("|", ">"):
        return str(node.value)
    source = text[node.start_mark.index : content_end(text, node)]
    first, *rest = source.split("\n")
    column = node.start_mark.column
    return "\n".join([first, *(line[column:] if not line[:column].strip() else line for line in rest)])


def set_key(text: str, key: str, value: object) -> str:
    """Set ``key`` to ``value``, adding the key (and missing parent mappings) when absent."""
    node: Node = _root(text)
    parts = _parts(key)
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        found = _child(node, part, ".".join(parts[:i]))
        if found is None:
            if not isinstance(node, MappingNode):
                raise EditError(f"'{where}' does not exist; only keys of mappings can be added")
            return add_key(text, node, parts[i:], value)
        key_node, child = found
        rest = parts[i + 1 :]
        if key_node is not None and (not rest or is_empty_scalar(child)):
            for nested in reversed(rest):
                value = {nested: value}
            return replace_value(text, key_node, child, value)
        if not rest:
            raise EditError(f"'{where}' is a list entry; set the whole list or a key inside the entry")
        node = child
    raise AssertionError("unreachable: the loop returns")
