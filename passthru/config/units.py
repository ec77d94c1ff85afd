"""Human units in config values: durations (``500ms``, ``3s``, ``5m``) and sizes (``64KiB``).

A bare number is refused for durations: ``timeout: 5`` is milliseconds in HAProxy and seconds
elsewhere, so we make the user say which. A bare integer is a byte count for sizes.
"""

from __future__ import annotations

import re

DURATION_HINT = "use a number with a unit: 500ms, 3s, 5m, 1h"
RATE_HINT = "use a count per period: 20/s, 600/m, 1000/h"
SIZE_HINT = "use a whole number of bytes or a number with a unit: 512B, 16KB, 64KiB, 1MiB"

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_NUMBER_UNIT = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*")


def _split(text: str) -> tuple[float, str] | None:
    m = _NUMBER_UNIT.fullmatch(text)
    return (float(m.group(1)), m.group(2)) if m else None


def parse_duration(value: object) -> float:
    """Seconds in ``value`` (a string such as ``1.5s``); raises ValueError saying what is allowed."""
    parts = _split(value) if isinstance(value, str) else None
    if parts is None or parts[1] not in _DURATION_UNITS:
        raise ValueError(f"invalid duration {value!r}: {DURATION_HINT}")
    seconds = parts[0] * _DURATION_UNITS[parts[1]]
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be more than zero ({DURATION_HINT})")
    return seconds


def parse_size(value: object) -> int:
    """Bytes in ``value`` (an int, or a string such as ``16KiB``); raises ValueError when invalid."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must not be negative ({SIZE_HINT})")
        return value
    parts = _split(value) if isinstance(value, str) else None
    unit = parts[1].lower() if parts else ""
    if parts is None or (unit and unit not in _SIZE_UNITS) or (not unit and not parts[0].is_integer()):
        raise ValueError(f"invalid size {value!r}: {SIZE_HINT}")
    size = parts[0] * _SIZE_UNITS.get(unit, 1)
    if not size.is_integer():
        raise ValueError(f"invalid size {value!r}: not a whole number of bytes")
    return int(size)


_RATE = re.compile(r"\s*(\d+)\s*/\s*(s|m|h)\s*")
_RATE_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(value: object) -> tuple[int, float]:
    """``(count, period_seconds)`` in ``value`` such as ``20/s``: at most ``count`` events per
    period, in bursts of up to ``count``; raises ValueError saying what is allowed."""
    m = _RATE.fullmatch(value) if isinstance(value, str) else None
    if m is None or int(m.group(1)) < 1:
        raise ValueError(f"invalid rate {value!r}: {RATE_HINT}")
    return int(m.group(1)), _RATE_PERIODS[m.group(2)]


def parse_count(value: object) -> int:
    """A whole number of at least 1 (connection counts)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"invalid count {value!r}: use a whole number, 1 or more")
