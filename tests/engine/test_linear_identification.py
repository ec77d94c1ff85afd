"""The whole engine, every built-in, fed a hostile prefix one byte at a time: the work stays
linear in the bytes (issue 14).

Each built-in is instrumented: a plain ``identify`` is charged every byte it is shown (it may
read them all, since it starts over), a resumable session the bytes it says it looked at. The
total must stay within a small multiple of the input, where re-parsing the prefix on each read
costs about n^2/2 (134 million for 16 KiB).
"""

from __future__ import annotations

import pytest

from passthru.identify import BUILTINS
from passthru.identify.engine import Identification, Preparing
from tests.identify.hostile import (
    KIB16,
    REQUEST_LINE,
    Meter,
    endless_header,
    short_headers,
    tls_one_byte_records,
    tls_record_announcing,
)

WORK_PER_BYTE = 4


def feed_one_byte_at_a_time(identification: Identification, data: bytes) -> tuple[str | None, int]:
    """As the server's read loop does: the growing prefix after every byte, until a final
    decision or the end of the input; (protocol, bytes read)."""
    for end in range(1, len(data) + 1):
        decision = identification.feed(data[:end])
        if decision.final:
            return decision.protocol, end
    return identification.feed(data, final=True).protocol, len(data)


HOSTILE = {
    "many short headers": (short_headers(REQUEST_LINE), "http"),
    "one endless header": (endless_header(REQUEST_LINE), "http"),  # decided at the 8 KiB line limit
    "tls record announcing 16 KiB": (tls_record_announcing(KIB16), "tls"),
    "tls hello in one-byte records": (tls_one_byte_records(KIB16), None),
}


@pytest.mark.parametrize("prepared", [False, True], ids=["plain", "prepared"])
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_trickle_costs_linear_work(name: str, prepared: bool) -> None:
    data, protocol = HOSTILE[name]
    meter = Meter()
    identifiers = tuple(meter.instrument(i) for i in BUILTINS)
    if prepared:
        identification = Identification((), prepared=Preparing()(identifiers))
        meter.shown = 0  # the prefilter's one-byte questions are shared by all connections
    else:
        identification = Identification(identifiers)
    found, read = feed_one_byte_at_a_time(identification, data)
    assert found == protocol
    assert not identification.errors
    assert meter.work <= WORK_PER_BYTE * read, f"{name}: {meter.work} bytes of work for {read} bytes"
