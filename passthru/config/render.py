"""Writing new values as YAML text, in the style of the value they replace.

Only the edited node is written, so its text is produced here: scalars plain unless they need
quotes (and in the quote style of the scalar they replace), collections inline (flow style)
or as one level of block style whose items are inline.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence

from ruamel.yaml import YAML


def _flow_dumper() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = True
    yaml.width = 1 << 20  # never fold
    yaml.representer.sort_base_mapping_type_on_output = False  # keep the caller's key order
    return yaml


_FLOW = _flow_dumper()


def is_collection(value: object) -> bool:
    return isinstance(value, Mapping) or (isinstance(value, Sequence) and not isinstance(value, str | bytes))


def inline(value: object) -> str:
    """``value`` as YAML on one line: ``5s``, ``'[::1]:22'``, ``{protocol: tls}``, ``[a, b]``."""
    out = io.StringIO()
    _FLOW.dump(_plain(value), out)
    text = out.getvalue()
    text = text.removesuffix("\n...\n").removesuffix("\n")
    assert "\n" not in text, "flow output of a scalar or collection fits on one line"
    return text


def scalar_like(value: object, style: str | None) -> str:
    """A scalar in the quote style (``'``, ``"`` or None for plain) of the one it replaces."""
    if isinstance(value, str) and style == "'":
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, str) and style == '"':
        return json.dumps(value, ensure_ascii=False)
    return inline(value)


def block(value: Mapping | Sequence, indent: int, newline: str) -> str:
    """A collection in block style whose first line starts at ``indent`` (not written: the
    caller splices it there) and whose later lines are indented to match; items are inline."""
    if isinstance(value, Mapping):
        lines = [f"{inline(k)}: {inline(v)}" for k, v in value.items()]
    else:
        lines = [f"- {inline(v)}" for v in value]
    return (newline + " " * indent).join(lines)


def _plain(value: object) -> object:
    """Turn tuples and mappings into the list/dict the dumper knows."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if is_collection(value):
        return [_plain(v) for v in value]  # type: ignore[union-attr]
    return value
