"""Properties every built-in identifier keeps on any input (hypothesis):

* it never raises and answers quickly (well under 50 ms, on inputs far longer than a first flight);
* its verdict is valid at the boundary: a dict, None, or an int larger than the data;
* "no match" is final: appending bytes never turns None into anything else;
* "need more" is honest about where the bytes end: the identifier is asked again with exactly
  the bytes it asked for (or more), as the engine does, and answers something else by then or
  asks for still more -- never the same count again;
* a match stays a match when more bytes follow (the client's next message), except for
  ``socks5``, whose greeting is only trusted when it is the whole first flight.

Inputs are random bytes and mutated corpus samples (cut, extended, or with a byte changed), so
that the deep parts of each parser are reached, not just its first check.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passthru.identify import BUILTINS
from passthru.identify.base import FieldKind, check_verdict
from tests.identify.corpus import samples

CORPUS = [data for _, _, data in samples()]
MATCH_ONLY_AS_WHOLE_FLIGHT = {"socks5"}
TIME_LIMIT = 0.050


@st.composite
def inputs(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "cut", "mutate", "extend"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    sample = draw(st.sampled_from(CORPUS))
    if kind == "cut":
        return sample[: draw(st.integers(0, len(sample)))]
    if kind == "extend":
        return sample + draw(st.binary(max_size=64))
    position = draw(st.integers(0, len(sample) - 1))
    return sample[:position] + bytes([draw(st.integers(0, 255))]) + sample[position + 1 :]


def timed(identify, data: bytes):
    start = time.perf_counter()
    verdict = identify(data)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT, f"{elapsed * 1000:.1f} ms on {len(data)} bytes"
    return verdict


PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=1000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("identifier", BUILTINS, ids=lambda i: i.name)
@PROPERTY_SETTINGS
@given(data=inputs(), extra=st.binary(min_size=1, max_size=64))
def test_identifier_properties(identifier, data: bytes, extra: bytes) -> None:
    verdict = check_verdict(identifier.name, data, timed(identifier.identify, data))
    longer = check_verdict(identifier.name, data + extra, timed(identifier.identify, data + extra))
    if verdict is None:
        assert longer is None, "a rejection was taken back when more bytes came"
    elif isinstance(verdict, dict) and identifier.name not in MATCH_ONLY_AS_WHOLE_FLIGHT:
        assert isinstance(longer, dict), "a match was lost when more bytes followed"
    elif isinstance(verdict, int):
        filled = data + (extra * (verdict // len(extra) + 1))[: verdict - len(data)]
        again = check_verdict(identifier.name, filled, timed(identifier.identify, filled))
        assert again != verdict, "asked for N bytes, then asked for N again with N bytes"


@pytest.mark.parametrize("identifier", BUILTINS, ids=lambda i: i.name)
def test_long_inputs_stay_fast(identifier) -> None:
    """Worst cases for scanners: long runs without the terminator they look for."""
    for data in (
        b"A" * 65536,
        b"\x00" * 65536,
        b"GET " + b"a" * 65536,
        b"*1\r\n" + b"$" * 65536,
        b"<stream:stream" + b" a='b'" * 10000,
        b"0 " + b"a" * 65536,
        b"<13>" + b"x" * 65536,
        b"NICK a\r\n" * 5000,
    ):
        timed(identifier.identify, data)


@pytest.mark.parametrize("identifier", BUILTINS, ids=lambda i: i.name)
def test_every_identifier_documents_itself(identifier) -> None:
    """``passthru identify --explain`` and the README table use these."""
    assert identifier.description
    assert identifier.source == "builtin"
    assert identifier.trusted
    assert identifier.fields is not None and all(isinstance(kind, FieldKind) for kind in identifier.fields.values())
