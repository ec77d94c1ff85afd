"""The confusion matrix: every real client's first bytes are claimed by their own identifier and
by no other, whole or cut at any point; random bytes and near-misses are claimed by nothing; and
the decision does not depend on the order of the identifiers."""

from __future__ import annotations

import random

import pytest

from passthru.identify import BUILTINS, builtin_names
from passthru.identify.engine import Identification, identify
from tests.identify.corpus import NEAR_MISSES, TRICKY_MATCHES, sample_id, samples, unidentifiable

SAMPLES = samples()


def matches(data: bytes) -> dict[str, dict]:
    """Every built-in that claims ``data``, checked one by one (not just the engine's winner)."""
    return {i.name: v for i in BUILTINS if isinstance(v := i.identify(data), dict)}


def test_corpus_covers_every_builtin() -> None:
    assert builtin_names() <= {protocol for protocol, _, _ in SAMPLES}
    assert {protocol for protocol, _, _ in SAMPLES} <= builtin_names()


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_sample_is_claimed_by_its_own_identifier_only(sample: tuple[str, str, bytes]) -> None:
    protocol, _, data = sample
    assert list(matches(data)) == [protocol]


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_engine_decides_the_whole_first_flight_without_waiting(sample: tuple[str, str, bytes]) -> None:
    """The client sent this and now waits: the decision must be final, not "need more"."""
    protocol, _, data = sample
    decision = identify(BUILTINS, data)
    assert (decision.protocol, decision.bytes_needed) == (protocol, None)


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_every_prefix_is_need_more_or_its_own_protocol(sample: tuple[str, str, bytes]) -> None:
    protocol, _, data = sample
    for cut in range(len(data)):
        prefix = data[:cut]
        for identifier in BUILTINS:
            verdict = identifier.identify(prefix)
            if identifier.name == protocol:
                # never rejected early, and never asks for more than the real client sent
                assert verdict is not None, (cut, identifier.name)
                if isinstance(verdict, int):
                    assert cut < verdict <= len(data), (cut, verdict)
            else:
                assert not isinstance(verdict, dict), (cut, identifier.name, verdict)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_engine_fed_in_pieces_never_decides_for_another_protocol(chunk: int) -> None:
    """The server feeds the growing prefix read by read; a decision, once made, is the right one."""
    for protocol, name, data in SAMPLES:
        state = Identification(list(BUILTINS))
        decision = None
        for end in range(chunk, len(data) + chunk, chunk):
            decision = state.feed(data[:end])
            if decision.final:
                break
        assert decision is not None
        assert decision.protocol == protocol, (name, end, decision)


@pytest.mark.parametrize("seed", range(4))
def test_order_of_identifiers_does_not_change_the_decision(seed: int) -> None:
    shuffled = list(BUILTINS)
    random.Random(seed).shuffle(shuffled)
    inputs = [data for _, _, data in SAMPLES] + list(NEAR_MISSES.values()) + [d for d, _ in TRICKY_MATCHES.values()]
    for data in inputs:
        for cut in sorted({len(data), len(data) // 2, 3}):
            for final in (False, True):
                expected = identify(BUILTINS, data[:cut], final=final)
                got = identify(shuffled, data[:cut], final=final)
                assert (got.protocol, got.fields, got.bytes_needed) == (
                    expected.protocol,
                    expected.fields,
                    expected.bytes_needed,
                )


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_miss_is_claimed_by_nothing(name: str) -> None:
    data = NEAR_MISSES[name]
    assert matches(data) == {}
    assert identify(BUILTINS, data, final=True).protocol is None


@pytest.mark.parametrize("name", sorted(TRICKY_MATCHES))
def test_unusual_but_real_openings_are_their_protocol(name: str) -> None:
    data, protocol = TRICKY_MATCHES[name]
    assert list(matches(data)) == [protocol]
    assert identify(BUILTINS, data).protocol == protocol


def test_near_miss_prefixes_wait_or_reject() -> None:
    """``GET`` is still waiting for its space; ``GETX`` is nothing."""
    http = next(i for i in BUILTINS if i.name == "http")
    assert isinstance(http.identify(b"GET"), int)
    assert http.identify(b"GETX") is None
    ssh = next(i for i in BUILTINS if i.name == "ssh")
    assert isinstance(ssh.identify(b"SSH-"), int)
    assert ssh.identify(b"SSH-3") is None


@pytest.mark.parametrize("name_data", unidentifiable(), ids=lambda nd: nd[0])
def test_unidentifiable_samples_match_nothing(name_data: tuple[str, bytes]) -> None:
    assert matches(name_data[1]) == {}


def test_random_bytes_match_nothing() -> None:
    rng = random.Random(20240601)
    for _ in range(3000):
        data = rng.randbytes(rng.choice((1, 2, 3, 4, 8, 16, 48, 100, 300)))
        assert matches(data) == {}, data.hex()


def test_random_text_matches_nothing() -> None:
    """Printable lines are where the text protocols live: random ones must still be nothing."""
    rng = random.Random(7)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :/<>.-_=*$\r\n"
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))
        assert matches(data) == {}, data
