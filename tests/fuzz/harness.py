"""The fuzz targets as plain Python: atheris drives them (``fuzz_identifiers.py``), the replay test
runs the kept corpus through them without it.

One input selects a target and how its bytes arrive:

* byte 0 picks the target: ``TARGETS[data[0] % len(TARGETS)]`` -- one per built-in identifier
  (``passthru.identify.BUILTINS``, in that order), then ``engine`` (all built-ins through
  ``Identification.feed``) and ``proxyproto`` (``passthru.proxyproto.parse_header``);
* byte 1 says where the bytes are cut into reads (:func:`cuts`);
* the rest is what the client sent.

Each target asks its function at every cut (the growing prefix, as the server does after each
read) and checks what the identifiers promise (``passthru/identify/base.py``):

* no exception escapes, and each call returns within :data:`CALL_LIMIT` seconds;
* the verdict is a dict with ``str`` keys, None, or an int above the length (``check_verdict``);
* "no match" is final: once None, None for every longer prefix;
* a match stays a match when more bytes follow (except ``socks5``, whose greeting is only
  trusted as the whole first flight, as ``tests/identify/test_properties.py`` says);
* "need N bytes" holds: no match appears before N bytes (the engine does not ask again before
  N, so such a match would be lost when the client stops sending);
* the engine's decision on the bytes read so far is the one-shot decision on the same bytes
  (``passthru identify`` and the server agree, whatever the TCP segmentation), and no
  identifier raised inside it (the engine would hide that as "no match");
* a PROXY header is the same header however many bytes follow it, within its bounds, and the
  ``proxy`` identifier accepts the same bytes.

A broken promise raises :class:`ContractViolation`; libFuzzer records the input as a crash.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time
from collections.abc import Callable
from typing import Any

from passthru.identify import BUILTINS, Identification, identify
from passthru.identify.base import Identifier, check_verdict
from passthru.identify.proxy_protocol import PROXY
from passthru.proxyproto import MAX_HEADER_LENGTH, ProxyHeader, parse_header

ENGINE, PROXYPROTO = "engine", "proxyproto"
TARGETS: tuple[str, ...] = (*(i.name for i in BUILTINS), ENGINE, PROXYPROTO)
BY_NAME: dict[str, Identifier] = {i.name: i for i in BUILTINS}
BUILTIN_NAMES = frozenset(BY_NAME)
#: Identifiers whose match may turn into "no match" when more bytes follow (see the docstring).
MATCH_ONLY_AS_WHOLE_FLIGHT = frozenset({"socks5"})
#: Seconds one call may take. Generous (instrumented code under atheris is several times slower
#: than plain Python; the built-ins answer in microseconds): it catches runaway scans and
#: backtracking, not small slowdowns. ``PASSTHRU_FUZZ_CALL_LIMIT`` overrides it.
CALL_LIMIT = float(os.environ.get("PASSTHRU_FUZZ_CALL_LIMIT", "0.25"))
MAX_CUTS = 12
EVERY_BYTE = 1  # cut seed: one read per byte (for the first EVERY_BYTE_UPTO bytes)
EVERY_BYTE_UPTO = 96


class ContractViolation(AssertionError):
    """An identifier, the engine or the PROXY parser broke its documented contract."""


def target_index(name: str) -> int:
    return TARGETS.index(name)


def make_input(target: str, payload: bytes, cut_seed: int = 0) -> bytes:
    """The fuzz input that feeds ``payload`` to ``target`` (seeds and reproducers use it)."""
    return bytes((target_index(target), cut_seed & 0xFF)) + payload


def split(data: bytes) -> tuple[str, int, bytes]:
    """(target, cut seed, payload) of one fuzz input."""
    if not data:
        return TARGETS[0], 0, b""
    seed = data[1] if len(data) > 1 else 0
    return TARGETS[data[0] % len(TARGETS)], seed, data[2:]


def cuts(seed: int, length: int) -> list[int]:
    """The prefix lengths at which the target is asked, ascending, ending with ``length``.

    Seed 0: one read of everything. Seed 1: one byte per read (for the first bytes), then the
    rest. Any other seed: up to ``MAX_CUTS`` reads at positions drawn from a generator seeded
    with it -- deterministic, so a crash file replays exactly.
    """
    if length == 0:
        return [0]
    if seed == 0:
        return [length]
    if seed == EVERY_BYTE:
        return sorted({*range(1, min(length, EVERY_BYTE_UPTO) + 1), length})
    rng = random.Random(seed)
    picks = {rng.randrange(1, length + 1) for _ in range(min(MAX_CUTS, length))}
    return sorted(picks | {length})


def run(data: bytes) -> None:
    """One fuzz input: the atheris entry point (``TestOneInput``) and the replay test's."""
    target, seed, payload = split(data)
    positions = cuts(seed, len(payload))
    if target == ENGINE:
        check_engine(payload, positions)
    elif target == PROXYPROTO:
        check_proxy_header(payload, positions)
    else:
        check_identifier(BY_NAME[target], payload, positions)


def timed(what: str, function: Callable[[bytes], Any], data: bytes) -> Any:
    """``function(data)``, failing when it takes longer than :data:`CALL_LIMIT`.

    A slow call is timed twice more and only the fastest counts, so a busy machine (a page
    fault, another process on the core) is not reported as a slow identifier. A repeated
    ``Identification.feed`` asks nothing again, so the engine's time is really bounded by the
    per-identifier targets, which time each identifier on the same bytes.
    """
    fastest = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        result = function(data)
        fastest = min(fastest, time.perf_counter() - start)
        if fastest <= CALL_LIMIT:
            return result
    raise ContractViolation(f"{what} took {fastest * 1000:.0f} ms on {len(data)} bytes (limit {CALL_LIMIT} s)")


def check_identifier(identifier: Identifier, payload: bytes, positions: list[int]) -> None:
    name = identifier.name
    previous: tuple[int, object] | None = None  # (length, verdict) at the last cut
    for length in positions:
        data = payload[:length]
        try:
            verdict = check_verdict(name, data, timed(name, identifier.identify, data))
        except ContractViolation:
            raise
        except Exception as exc:  # an escaping exception is the finding; say where it happened
            raise ContractViolation(f"{name} raised {type(exc).__name__}: {exc} on {len(data)} bytes") from exc
        if previous is not None:
            before_length, before = previous
            if before is None and verdict is not None:
                raise ContractViolation(
                    f"{name}: no match at {before_length} bytes, then {_kind(verdict)} at {length} "
                    "('no match' is final)"
                )
            if isinstance(before, dict) and not isinstance(verdict, dict) and name not in MATCH_ONLY_AS_WHOLE_FLIGHT:
                raise ContractViolation(f"{name}: matched at {before_length} bytes, then {_kind(verdict)} at {length}")
            if isinstance(before, int) and length < before and isinstance(verdict, dict):
                raise ContractViolation(
                    f"{name}: asked for {before} bytes at {before_length}, but matches at {length} already "
                    "(the engine would not ask before it has the bytes it asked for)"
                )
        previous = (length, verdict)


def check_engine(payload: bytes, positions: list[int]) -> None:
    """Feed the growing prefix as the server does; stop at a final decision, as it does."""
    state = Identification(BUILTINS)
    decision = None
    consumed = 0
    for length in positions:
        data = payload[:length]
        decision = timed("engine", state.feed, data)
        consumed = length
        _check_decision(decision, data)
        if decision.final:
            break
    data = payload[:consumed]
    if decision is None or not decision.final:
        decision = timed("engine (final)", lambda d: state.feed(d, final=True), data)
        _check_decision(decision, data)
        if not decision.final:
            raise ContractViolation(f"engine: still wants {decision.bytes_needed} bytes after final=True")
    if state.errors:
        identifier, error = state.errors[0]
        raise ContractViolation(f"{identifier.name} raised inside the engine on {consumed} bytes: {error}")
    once = identify(BUILTINS, data, final=True)
    if once.protocol != decision.protocol:
        raise ContractViolation(
            f"engine: reads at {positions} decided {decision.protocol!r} on {consumed} bytes, "
            f"one read of the same bytes decides {once.protocol!r}"
        )


def _check_decision(decision: Any, data: bytes) -> None:
    if decision.protocol is not None and decision.protocol not in BUILTIN_NAMES:
        raise ContractViolation(f"engine: unknown protocol {decision.protocol!r}")
    if not isinstance(decision.fields, dict) or not all(isinstance(k, str) for k in decision.fields):
        raise ContractViolation(f"engine: fields are not a dict with str keys: {decision.fields!r}")
    if decision.bytes_needed is not None and (
        isinstance(decision.bytes_needed, bool) or decision.bytes_needed <= len(data)
    ):
        raise ContractViolation(f"engine: bytes_needed {decision.bytes_needed!r} with {len(data)} bytes")
    if decision.bytes_needed is not None and decision.protocol is not None:
        raise ContractViolation("engine: a protocol and bytes_needed at once")


def check_proxy_header(payload: bytes, positions: list[int]) -> None:
    previous: tuple[int, object] | None = None
    for length in positions:
        data = payload[:length]
        try:
            result = timed("parse_header", parse_header, data)
        except ContractViolation:
            raise
        except Exception as exc:
            raise ContractViolation(f"parse_header raised {type(exc).__name__}: {exc} on {len(data)} bytes") from exc
        if isinstance(result, ProxyHeader):
            _check_header(result, data)
        elif result is not None and (isinstance(result, bool) or not isinstance(result, int) or result <= len(data)):
            raise ContractViolation(f"parse_header returned {result!r} on {len(data)} bytes")
        elif isinstance(result, int) and result > MAX_HEADER_LENGTH:
            raise ContractViolation(f"parse_header asks for {result} bytes, above MAX_HEADER_LENGTH")
        if previous is not None:
            before_length, before = previous
            if before is None and result is not None:
                raise ContractViolation(f"parse_header: None at {before_length} bytes, then {result!r} at {length}")
            if isinstance(before, ProxyHeader) and result != before:
                raise ContractViolation(
                    f"parse_header: {before!r} at {before_length} bytes, {result!r} at {length} "
                    "(bytes after the header must not change it)"
                )
            if isinstance(before, int) and length < before and isinstance(result, ProxyHeader):
                raise ContractViolation(f"parse_header asked for {before} bytes but has a header at {length}")
        previous = (length, result)


def _check_header(header: ProxyHeader, data: bytes) -> None:
    if not 0 < header.length <= min(len(data), MAX_HEADER_LENGTH):
        raise ContractViolation(f"header length {header.length} with {len(data)} bytes")
    if header.version not in (1, 2) or header.command not in ("PROXY", "LOCAL"):
        raise ContractViolation(f"header version/command {header.version!r}/{header.command!r}")
    if (header.source is None) != (header.destination is None):
        raise ContractViolation(f"one address without the other: {header!r}")
    for address in (header.source, header.destination):
        if address is not None:
            host, port = address
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ContractViolation(f"header address {host!r} is not an IP address") from None
            if not 0 <= port <= 65535:
                raise ContractViolation(f"port {port} out of range")
    verdict = PROXY.identify(data[: header.length])
    if not isinstance(verdict, dict):
        raise ContractViolation(f"parse_header accepts a header the proxy identifier answers {verdict!r} to")


def _kind(verdict: object) -> str:
    if verdict is None:
        return "no match"
    if isinstance(verdict, dict):
        return f"match {verdict!r}"
    return f"need {verdict}"
