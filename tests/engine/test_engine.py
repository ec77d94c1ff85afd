"""The decision rule that combines identifiers (passthru.identify.engine)."""

from __future__ import annotations

import itertools

import pytest

from passthru.identify.base import GENERIC_PRECEDENCE, SPECIFIC_PRECEDENCE, USER_PRECEDENCE, Identifier
from passthru.identify.engine import Identification, identify


def prefix_identifier(name: str, prefix: bytes, precedence: int, fields: dict | None = None) -> Identifier:
    def check(data: bytes):
        if len(data) < len(prefix):
            return len(prefix) if prefix.startswith(data) else None
        return dict(fields or {}) if data.startswith(prefix) else None

    return Identifier(name, check, precedence)


GENERIC = prefix_identifier("generic", b"AB", GENERIC_PRECEDENCE)
SPECIFIC = prefix_identifier("specific", b"ABCD", SPECIFIC_PRECEDENCE, {"kind": "specific"})


def test_specific_gets_its_chance_before_generic() -> None:
    state = Identification([GENERIC, SPECIFIC])
    decision = state.feed(b"AB")
    assert decision.protocol is None and decision.bytes_needed == 4  # generic matched, specific waits
    assert state.feed(b"ABCD").protocol == "specific"


def test_generic_wins_when_specific_rules_itself_out_or_input_ends() -> None:
    assert identify([GENERIC, SPECIFIC], b"ABX").protocol == "generic"
    assert identify([GENERIC, SPECIFIC], b"AB", final=True).protocol == "generic"


def test_decision_does_not_depend_on_order() -> None:
    user = prefix_identifier("user", b"A", USER_PRECEDENCE)
    for data in (b"", b"A", b"AB", b"ABC", b"ABCD", b"ABX", b"X"):
        decisions = {
            (d.protocol, d.bytes_needed)
            for d in (identify(list(order), data) for order in itertools.permutations([GENERIC, SPECIFIC, user]))
        }
        assert len(decisions) == 1, (data, decisions)


def test_an_identifier_that_raises_or_misbehaves_is_contained() -> None:
    def boom(data: bytes):
        raise ValueError("bad parser")

    def stuck(data: bytes):
        return len(data)  # asks for what it already has: would loop forever

    def truthy(data: bytes):
        return True

    identifiers = [Identifier("boom", boom, 1), Identifier("stuck", stuck, 2), Identifier("truthy", truthy, 3), GENERIC]
    state = Identification(identifiers)
    assert state.feed(b"ABZ").protocol == "generic"
    errors = {identifier.name: error for identifier, error in state.errors}
    assert errors["boom"] == "ValueError: bad parser"
    assert "asked for 3 bytes but already has 3" in errors["stuck"]
    assert "returned bool" in errors["truthy"]


@pytest.mark.parametrize("data", [b"", b"A"])
def test_need_more_is_the_smallest_useful_length(data: bytes) -> None:
    assert identify([GENERIC, SPECIFIC], data).bytes_needed == 2


def test_prepared_sets_decide_exactly_like_asking_everyone() -> None:
    """The first-byte prefilter only skips identifiers that already said "no match" to that
    byte: on every real-client sample, cut anywhere and fed in chunks, the decisions agree."""
    import random

    from passthru.identify import BUILTINS
    from passthru.identify.engine import Preparing
    from tests.identify.corpus import samples

    preparing = Preparing()
    rng = random.Random(5)
    inputs = [data for _, _, data in samples()] + [rng.randbytes(rng.randrange(1, 64)) for _ in range(300)]
    for data in inputs:
        for cut in sorted({1, 2, 5, len(data) // 2, len(data)}):
            chunk = data[:cut]
            plain, prepared = Identification(BUILTINS), Identification((), prepared=preparing(BUILTINS))
            for end in range(1, len(chunk) + 1, 7):
                assert plain.feed(chunk[:end]) == prepared.feed(chunk[:end]), chunk[:end]
            assert plain.feed(chunk, final=True) == prepared.feed(chunk, final=True), chunk
