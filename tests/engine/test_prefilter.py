"""The prefilter by opening (passthru.identify.prefilter): which identifiers a connection asks,
known from the first bytes of its first read. It must never change a decision, must stay bounded
whatever openings clients send, and must never pre-ask user code."""

from __future__ import annotations

import random

import pytest

from passthru.identify import BUILTINS
from passthru.identify.base import Identifier
from passthru.identify.engine import Identification, Preparing
from passthru.identify.prefilter import PREFIX_BYTES, Prefilter
from tests.identify.corpus import samples

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n"
#: A TLS 1.2 record header, then a ClientHello's header and version (the random would follow).
HELLO_START = bytes.fromhex("1603010200010001fc0303")


def inputs(rng: random.Random) -> list[bytes]:
    """Corpus samples, the same openings with other continuations (so a remembered opening is
    reused by a connection that goes on differently), and random bytes."""
    corpus = [data for _, _, data in samples()]
    variants = []
    for data in corpus:
        keep = rng.randrange(1, PREFIX_BYTES + 2)
        variants.append(data[:keep] + rng.randbytes(rng.randrange(0, 48)))
        variants.append(data[:keep] + data[keep + 1 :])  # one byte dropped after the opening
    return corpus + variants + [rng.randbytes(rng.randrange(1, 64)) for _ in range(300)]


@pytest.mark.parametrize("max_prefixes", [4096, 3], ids=["roomy", "emptied-often"])
def test_decisions_match_the_unfiltered_engine_whatever_the_first_read(max_prefixes: int) -> None:
    """Every input, its first read cut at every size around the opening length, then fed in
    steps: the prepared engine decides exactly as the engine that asks every identifier. One
    prepared set serves all inputs, as in the server, so openings are remembered across them
    (and, with room for 3, forgotten and learnt again all the time)."""
    prepared = Preparing()(BUILTINS)
    prepared.prefilter.max_prefixes = max_prefixes
    for data in inputs(random.Random(11)):
        for first in sorted({1, 2, 4, PREFIX_BYTES - 1, PREFIX_BYTES, PREFIX_BYTES + 1, len(data)}):
            if first > len(data):
                continue
            plain, filtered = Identification(BUILTINS), Identification((), prepared=prepared)
            for end in [first, *range(first + 5, len(data) + 1, 5)]:
                assert plain.feed(data[:end]) == filtered.feed(data[:end]), data[:end]
            assert plain.feed(data, final=True) == filtered.feed(data, final=True), data
        assert len(prepared.prefilter) <= max_prefixes


def test_the_table_of_openings_stays_bounded_under_random_openings() -> None:
    prefilter = Prefilter(Preparing()(BUILTINS).order, max_prefixes=64)
    rng = random.Random(3)
    for _ in range(5000):
        prefilter.candidates(rng.randbytes(rng.randrange(2, 40)))
        assert len(prefilter) <= 64
    # after the flood, a common opening is learnt again and narrowed as before it
    assert [i.name for i in prefilter.candidates(REQUEST)] == [i.name for i in prefilter.first_byte(REQUEST[0])]
    assert [i.name for i in prefilter.candidates(REQUEST)] == ["http", "redis"]


def test_a_common_opening_narrows_to_the_identifiers_that_can_still_match() -> None:
    """Of the six built-ins that accept a ``G`` (and the four that accept 0x16), the first ten
    bytes leave only those that could still match the whole request (redis waits for the end of
    the line to tell ``GET / HTTP/1.1`` from an inline ``GET key``)."""
    prefilter = Preparing()(BUILTINS).prefilter
    assert len(prefilter.first_byte(REQUEST[0])) == 6
    assert prefilter.candidates(REQUEST) == prefilter.first_byte(REQUEST[0]), "seen once: only noted"
    assert [i.name for i in prefilter.candidates(REQUEST)] == ["http", "redis"]
    assert len(prefilter.first_byte(HELLO_START[0])) == 4
    prefilter.candidates(HELLO_START + bytes(100))
    assert [i.name for i in prefilter.candidates(HELLO_START + bytes(200))] == ["tls"]
    assert len(prefilter) == 2


def test_user_files_are_never_asked_ahead_and_broken_trusted_ones_stay_candidates() -> None:
    asked: list[bytes] = []

    def user(data: bytes) -> None:
        asked.append(data)
        return None

    def broken(data: bytes) -> int:
        if len(data) > 1:
            raise ValueError("broken on longer openings")
        return 2

    identifiers = (
        Identifier("user", user, 0),
        Identifier("broken", broken, 1, trusted=True),
        Identifier("never", lambda data: None if len(data) > 1 else 2, 2, trusted=True),
        *BUILTINS,
    )
    prepared = Preparing()(identifiers)
    for _ in range(2):  # the second connection with this opening asks the narrowed set
        identification = Identification((), prepared=prepared)
        identification.feed(REQUEST)
    assert asked == [REQUEST, REQUEST], "the user file is asked on the connections only"
    assert [a.identifier.name for a in identification.answers] == ["user", "broken", "http", "redis"], (
        "'never' (no match on two bytes) is skipped; 'broken' raised when asked ahead, so it is asked"
    )
    assert [(i.name, error) for i, error in identification.errors] == [
        ("broken", "ValueError: broken on longer openings")
    ]


def test_the_server_s_engine_does_not_ask_identifiers_after_the_first_match() -> None:
    """By the decision rule only identifiers before the first match (in consultation order) can
    change the decision, so the prepared engine stops there; ``passthru identify`` (no prepared
    set) still asks everyone, for ``--explain``."""
    asked: list[str] = []

    def recording(name: str, answer: object) -> Identifier:
        def identify(data: bytes) -> object:
            asked.append(name)
            return answer(data) if callable(answer) else answer

        return Identifier(name, identify, 50, trusted=True)

    waits = recording("a-waits", lambda data: None if len(data) >= 6 else 6)
    matches = recording("b-matches", {})
    later = recording("c-later", 100)
    identifiers = (waits, matches, later)
    prepared = Preparing()(identifiers)
    for _ in range(2):
        prepared.prefilter.candidates(b"hello")  # its questions ahead are not the connection's
    assert [i.name for i in prepared.prefilter.candidates(b"hello")] == ["a-waits", "b-matches", "c-later"]

    asked.clear()
    server = Identification((), prepared=prepared)
    assert server.feed(b"hello").bytes_needed == 6, "a better-placed identifier still waits"
    assert asked == ["a-waits", "b-matches"]
    assert server.feed(b"hello!").protocol == "b-matches"
    assert asked == ["a-waits", "b-matches", "a-waits"]

    asked.clear()
    command = Identification(identifiers)
    assert command.feed(b"hello!").protocol == "b-matches"
    assert asked == ["a-waits", "b-matches", "c-later"]
