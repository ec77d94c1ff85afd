"""``HeaderLines`` reads the lines that have already arrived with one split (issue 11); the
line-at-a-time loop it shortcuts is the reference. On any bytes, cut into any reads, with any
limits, both give the same headers, the same state and the same outcome."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from passthru.identify.incremental import HeaderLines
from passthru.identify.parsing import Malformed, Truncated


class LineAtATime(HeaderLines):
    """The reference: the loop in ``read`` alone, one ``LineScanner.next`` per line."""

    __slots__ = ()

    def _read_arrived(self, data: bytes) -> None:
        return None


def outcome(block: HeaderLines, data: bytes) -> tuple[object, ...]:
    try:
        result: object = list(block.read(data))
    except Truncated as short:
        result = ("truncated", short.needed)
    except Malformed:
        result = "malformed"
    return (result, block.ended, block.capped, block.count, block.lines.start, list(block.headers))


LINE_BYTES = st.sampled_from([b"a", b"B", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"x: y", b"\x00", b"\xff"])


@settings(max_examples=400, deadline=None)
@given(
    data=st.lists(LINE_BYTES, max_size=60).map(b"".join),
    cuts=st.lists(st.integers(0, 80), max_size=6),
    start=st.integers(0, 3),
    max_block=st.integers(1, 40),
    max_line=st.one_of(st.none(), st.integers(1, 20)),
    max_lines=st.one_of(st.none(), st.integers(1, 6)),
    lenient=st.booleans(),
)
def test_reading_arrived_lines_at_once_changes_nothing(
    data: bytes,
    cuts: list[int],
    start: int,
    max_block: int,
    max_line: int | None,
    max_lines: int | None,
    lenient: bool,
) -> None:
    data = b"GET"[:start] + data
    settings_ = {"max_lines": max_lines, "lenient": lenient, "max_line": max_line}
    fast, reference = HeaderLines(start, max_block, **settings_), LineAtATime(start, max_block, **settings_)
    for end in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:
        if end < start:
            continue
        seen = outcome(fast, data[:end])
        assert seen == outcome(reference, data[:end]), data[:end]
        if seen[0] == "malformed" or fast.ended or fast.capped:
            break
        assert fast.lines.examined <= 2 * end, "each byte is looked at twice at most"
