"""Identification cost is linear in the bytes however a client trickles them (issue 14).

The hostile inputs are fed one byte at a time, as a client sending one byte per packet makes the
server do, to each resumable identifier (``Identifier.session``). Work is counted, not timed: the
bytes the session's scanners looked at (``examined``) stay within twice the bytes it was
shown (a byte is read once; a partial TLS record's header is looked at again when the record
completes), where a parser that starts over on every read looks at about n^2/2.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passthru.identify import BUILTINS
from passthru.identify.base import Identifier
from passthru.identify.http import HTTP, MAX_HEADERS, RTSP
from passthru.identify.messaging import STOMP
from passthru.identify.tls import TLS
from tests.identify.corpus import samples
from tests.identify.hostile import (
    KIB16,
    REQUEST_LINE,
    WORST_STARTS,
    Meter,
    endless_header,
    filled,
    short_headers,
    tls_one_byte_records,
    tls_record_announcing,
    trickle,
)
from tests.identify.test_properties import PROPERTY_SETTINGS, inputs

RTSP_LINE = b"OPTIONS rtsp://cam.example.test/ RTSP/1.0\r\n"
STOMP_LINE = b"CONNECT\n"

SESSIONS = [i for i in BUILTINS if i.session is not None]
HOSTILE = {
    "http short headers": (HTTP, short_headers(REQUEST_LINE)),
    "http endless header": (HTTP, endless_header(REQUEST_LINE)),
    "rtsp short headers": (RTSP, short_headers(RTSP_LINE)),
    "rtsp endless header": (RTSP, endless_header(RTSP_LINE)),
    "stomp short headers": (STOMP, short_headers(STOMP_LINE, b"a:b\n")),
    "stomp endless header": (STOMP, endless_header(STOMP_LINE)),
    "tls record announcing 16 KiB": (TLS, tls_record_announcing(KIB16)),
    "tls hello in one-byte records": (TLS, tls_one_byte_records(KIB16)),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_trickled_hostile_prefix_is_read_once(name: str) -> None:
    identifier, data = HOSTILE[name]
    assert identifier.session is not None
    session = identifier.session()
    verdict, shown = trickle(session, data)
    assert shown <= len(data)
    assert session.examined <= 2 * shown, f"{name}: looked at {session.examined} bytes to read {shown}"
    assert verdict == identifier.identify(data[:shown]), "the session and the one-shot identify agree"


def test_http_decides_after_the_header_cap_with_the_fields_so_far() -> None:
    data = REQUEST_LINE + b"Host: Example.TEST:8080\r\n" + short_headers(b"", count=MAX_HEADERS + 50)
    verdict, shown = trickle(HTTP.session(), data)
    assert verdict == {"method": "GET", "path": "/", "version": "1.1", "host": "example.test"}
    header_lines = data[len(REQUEST_LINE) : shown].count(b"\n")
    assert header_lines == MAX_HEADERS, "decided on the 101st header line, not at the end of the block"


def test_rtsp_without_cseq_in_the_first_101_headers_is_no_match() -> None:
    verdict, shown = trickle(RTSP.session(), short_headers(RTSP_LINE, count=MAX_HEADERS + 1) + b"CSeq: 1\r\n\r\n")
    assert verdict is None and shown == len(RTSP_LINE) + 6 * MAX_HEADERS


@pytest.mark.parametrize("identifier", SESSIONS, ids=lambda i: i.name)
def test_a_session_answers_like_identify_on_every_prefix(identifier: Identifier) -> None:
    """Resuming never changes a verdict: on every corpus sample (of any protocol), fed a byte at
    a time, each session answer equals the one-shot ``identify`` of the same prefix."""
    for _, name, data in samples():
        assert identifier.session is not None
        session = identifier.session()
        for end in range(1, len(data) + 1):
            expected = identifier.identify(data[:end])
            assert session(data[:end]) == expected, (name, end)
            if not isinstance(expected, int):
                break


@pytest.mark.parametrize("identifier", SESSIONS, ids=lambda i: i.name)
@PROPERTY_SETTINGS
@given(data=inputs(), steps=st.lists(st.integers(1, 64), min_size=1, max_size=40))
def test_a_session_fed_in_any_chunks_answers_like_identify(
    identifier: Identifier, data: bytes, steps: list[int]
) -> None:
    """Random and mutated inputs, arriving in reads of random sizes: every answer of the
    session equals the one-shot ``identify`` of the same prefix, up to the first final one."""
    assert identifier.session is not None
    session = identifier.session()
    end = 0
    for step in steps:
        end = min(len(data), end + step)
        expected = identifier.identify(data[:end])
        assert session(data[:end]) == expected, end
        if not isinstance(expected, int) or end == len(data):
            break


def test_a_session_refuses_a_prefix_that_does_not_grow() -> None:
    session = HTTP.session()
    session(b"GET / HT")
    with pytest.raises(ValueError, match="growing prefix"):
        session(b"GET")


def openings(identifier: Identifier) -> list[tuple[bytes, bytes]]:
    """The worst openings found for it, and each of its corpus samples cut in half or whole,
    padded with letters, zeros or short lines."""
    found = list(WORST_STARTS.get(identifier.name, []))
    for protocol, _, data in samples():
        if protocol == identifier.name:
            found += [(data[:cut], filler) for cut in (len(data) // 2, len(data)) for filler in (b"A", b"\0", b"a\r\n")]
    return found


def work(identifier: Identifier, data: bytes) -> tuple[int, int]:
    """(work done, bytes shown) to trickle ``data`` into one connection's form of ``identifier``."""
    meter = Meter()
    _, shown = trickle(meter.instrument(identifier).start(), data)
    return meter.work, shown


AUDIT_SIZES = (KIB16, 4 * KIB16)  # limits.identify_bytes is 16 KiB by default, up to 1 MiB


@pytest.mark.parametrize("identifier", BUILTINS, ids=lambda i: i.name)
def test_no_builtin_costs_more_per_byte_as_the_input_grows(identifier: Identifier) -> None:
    """The audit of every built-in: fed its worst openings a byte at a time, 16 KiB then 64 KiB
    of them, the extra 48 KiB cost at most 4 bytes of work each. Re-reading that is left is
    bounded (a parser that gives up after a 255-byte banner or a 4 KiB stream header re-reads
    at most that much), never growing with what the client sends."""
    assert openings(identifier), "every built-in is audited"
    for start, filler in openings(identifier):
        (small, small_shown), (large, large_shown) = (work(identifier, filled(start, filler, n)) for n in AUDIT_SIZES)
        extra = large_shown - small_shown
        assert large - small <= 4 * extra, f"{start!r} + {filler!r}...: {large - small} work for {extra} more bytes"
