"""Run a file's ``SAMPLES``: the check that decides whether a new version may serve.

A ``match`` sample must give a dict, and is also fed the way a slow client sends it: from one
byte on, asking again only once the number of bytes the identifier asked for is there (exactly
what the engine does). On a prefix of a matching sample the identifier must not say "no match"
(the engine would drop it for good before the rest arrives) nor ask for more bytes than the
sample has (a client sending exactly this would wait for the identify timeout).

A ``no_match`` sample must give ``None``, not "need more": user identifiers are consulted first,
and while one waits for bytes no lower-precedence protocol can be chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

from passthru.identify.base import Fields, Identifier
from passthru.plugins.errors import IdentifierFailed

Call = Callable[[Identifier, bytes], "Fields | int | None"]
#: All samples of one file together may take this long (each call also has its own budget).
SAMPLES_BUDGET = 1.0


@dataclass(frozen=True)
class SampleResult:
    kind: str  # "match" | "no_match"
    index: int
    data: bytes
    verdict: Fields | int | None = None
    problem: str | None = None  # None when the sample passed
    line: int | None = None  # the user file's line, when the problem came from running it

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def label(self) -> str:
        return f"{self.kind}[{self.index}]"


class _OutOfTime(Exception):
    pass


def run_samples(identifier: Identifier, call: Call, total_budget: float = SAMPLES_BUDGET) -> list[SampleResult]:
    """One result per sample, in file order (``match`` first). Never raises for user errors."""
    deadline = perf_counter() + total_budget

    def ask(data: bytes) -> Fields | int | None:
        if perf_counter() > deadline:
            raise _OutOfTime
        return call(identifier, data)

    results = []
    for kind, samples, check in (
        ("match", identifier.samples_match, _check_match),
        ("no_match", identifier.samples_no_match, _check_no_match),
    ):
        for index, data in enumerate(samples):
            try:
                verdict, problem = check(ask, data)
                results.append(SampleResult(kind, index, data, verdict, problem))
            except IdentifierFailed as error:
                results.append(SampleResult(kind, index, data, None, error.message, error.line))
            except _OutOfTime:
                problem = f"not run: the samples together took longer than {total_budget:g} s"
                results.append(SampleResult(kind, index, data, None, problem))
    return results


def _check_match(ask: Callable[[bytes], Fields | int | None], data: bytes) -> tuple[Fields | int | None, str | None]:
    size = 1
    while size < len(data):
        verdict = ask(data[:size])
        if verdict is None:
            return None, f"no match on its first {size} bytes: the engine would give up before the rest arrived"
        if isinstance(verdict, dict):
            break  # decided early; the engine stops asking here too
        if verdict > len(data):
            return verdict, (
                f"after {size} bytes it asks for {verdict}, but the sample has {len(data)}: "
                "a client sending exactly this would wait for the identify timeout"
            )
        size = verdict
    verdict = ask(data)
    if isinstance(verdict, dict):
        return verdict, None
    got = "no match (None)" if verdict is None else f"a request for {verdict} bytes"
    return verdict, f"expected a match (a dict of fields), got {got}"


def _check_no_match(ask: Callable[[bytes], Fields | int | None], data: bytes) -> tuple[Fields | int | None, str | None]:
    verdict = ask(data)
    if verdict is None:
        return None, None
    if isinstance(verdict, dict):
        return verdict, f"expected no match (None), but it matched with {verdict!r}"
    return verdict, (
        f"expected no match (None), but it asks for {verdict} bytes: "
        "while a user identifier waits, no other protocol can be chosen"
    )


def first_failure(results: list[SampleResult]) -> SampleResult | None:
    return next((r for r in results if not r.ok), None)


def sample_text(data: bytes, limit: int = 40) -> str:
    """A short printable form of a sample for logs and the CLI."""
    text = repr(data[:limit])
    return text + "…" if len(data) > limit else text
