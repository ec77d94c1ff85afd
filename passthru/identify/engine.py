"""Combine the verdicts of many identifiers into one decision, incrementally.

The decision rule (documented in README, "How a protocol is chosen"):

1. Every identifier sees the same bytes; identifiers are consulted in precedence order
   (user files first, then specific built-ins, then generic ones; ties by name), so the result
   never depends on the order they were registered in.
2. An identifier that answered "no match" is never asked again for this connection (the
   verdict is final by contract); one that asked for N bytes is not asked again before N arrive.
3. The match with the best precedence wins, but only once no identifier of better precedence
   is still waiting for bytes: a more specific protocol gets its chance before a generic one.
4. When no more bytes will come (byte limit, identify timeout, client closed its side), the
   best match so far wins, or there is no match.

An identifier that raises is treated as "no match" for that connection and reported through
``errors`` so the caller can log it; it never escapes.

Cost. ``Identification`` is per-connection state, so it also holds each trusted identifier's
resumable session (``Identifier.session``, started on first use): the HTTP family, for one, then
reads each new byte once instead of re-parsing the whole prefix on every read, and a client that
trickles its bytes costs time linear in what it sent. Trusted identifiers are called directly;
only untrusted ones (user files) go through ``guard``, which contains them. Identifiers after
the first match in consultation order are not asked at all (rule 3: they cannot win over it):
an HTTP request asks the one or two identifiers ahead of ``http``, not all six its first byte
leaves possible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from passthru.identify.base import Fields, Identifier, IdentifyFunc, check_verdict

Guard = Callable[[Identifier, bytes], "Fields | int | None"]


def call_plain(identifier: Identifier, data: bytes) -> Fields | int | None:
    """Call an identifier with no containment (built-ins are trusted, pure and bounded)."""
    return identifier.identify(data)


@dataclass
class Answer:
    """What one identifier said about the bytes so far (``verdict`` as in the base API)."""

    identifier: Identifier
    verdict: Fields | int | None = 0
    error: str | None = None
    #: The trusted identifier's per-connection callable (its session), made when first asked.
    session: IdentifyFunc | None = field(default=None, repr=False)

    @property
    def matched(self) -> bool:
        return isinstance(self.verdict, dict)

    @property
    def needed(self) -> int | None:
        return self.verdict if isinstance(self.verdict, int) else None


@dataclass(frozen=True)
class Decision:
    """The outcome so far: a protocol and its fields, or how many bytes would help."""

    protocol: str | None
    fields: Fields
    bytes_needed: int | None
    identifier: Identifier | None = None

    @property
    def final(self) -> bool:
        return self.bytes_needed is None


def ordered(identifiers: Iterable[Identifier]) -> list[Identifier]:
    """The consultation order: precedence, then name, so registration order never matters."""
    return sorted(identifiers, key=lambda i: (i.precedence, i.name))


class Prepared:
    """An identifier set made ready for many connections: in consultation order, and knowing,
    for each first byte, which identifiers said "no match" to that byte alone. "No match" is
    final by contract, so those need not be asked again for any connection starting with that
    byte: most identifiers reject most first bytes, so a connection asks (and keeps state for)
    a handful, not all.

    Only trusted identifiers (built-ins and config rules) are pre-asked this way; user files are
    always asked, under their containment.
    """

    def __init__(self, identifiers: Sequence[Identifier]) -> None:
        self.source = identifiers
        self.order = ordered(identifiers)
        self._candidates: dict[int, tuple[Identifier, ...]] = {}

    def candidates(self, first: int) -> tuple[Identifier, ...]:
        """The identifiers, in order, that a connection starting with this byte must ask."""
        known = self._candidates.get(first)
        if known is None:
            data = bytes((first,))
            known = tuple(i for i in self.order if not (i.trusted and _says_no(i, data)))
            self._candidates[first] = known
        return known


def _says_no(identifier: Identifier, data: bytes) -> bool:
    try:
        return identifier.identify(data) is None
    except Exception:  # a broken identifier is asked normally (and contained) per connection
        return False


class Preparing:
    """The ``Prepared`` form of the last identifier set seen, reused while that set is the same
    object (the server asks once per connection; the set changes only on reloads)."""

    def __init__(self) -> None:
        self._last: Prepared | None = None

    def __call__(self, identifiers: Sequence[Identifier]) -> Prepared:
        last = self._last
        if last is None or last.source is not identifiers:
            last = self._last = Prepared(identifiers)
        return last


@dataclass
class Identification:
    """Per-connection identification state: feed it the growing prefix, read the decision."""

    identifiers: Sequence[Identifier]
    guard: Guard = call_plain
    prepared: Prepared | None = None  # then ``identifiers`` is ignored: the prepared set is used
    #: Ask every identifier, even those behind a match (``passthru identify --explain``).
    exhaustive: bool = False
    answers: list[Answer] = field(init=False)
    errors: list[tuple[Identifier, str]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        # With a prepared set, the answers are made at the first byte, for its candidates only.
        self.answers = [] if self.prepared is not None else [Answer(i) for i in ordered(self.identifiers)]
        self._open = list(self.answers)  # those that have not said "no match", in order
        self._decision: Decision | None = None
        self._wake = 0  # the fewest bytes any identifier still waiting asked for

    def feed(self, data: bytes, final: bool = False) -> Decision:
        """Re-run the identifiers that could still change their mind on ``data``."""
        if not final and self._decision is not None and len(data) < self._wake:
            return self._decision  # nobody is due: a 16 KiB record trickling in asks no one
        if not self.answers and data and self.prepared is not None:
            self.answers = [Answer(i) for i in self.prepared.candidates(data[0])]
            self._open = list(self.answers)
        still_open: list[Answer] = []
        waiting: list[int] = []  # bytes wanted by open identifiers ahead of any match
        size = len(data)
        decision = None
        for index, answer in enumerate(self._open):
            verdict = answer.verdict
            if not isinstance(verdict, dict) and size >= verdict:
                verdict = answer.verdict = self._ask(answer, data)
                if verdict is None:
                    continue
            still_open.append(answer)
            if decision is not None:
                continue  # exhaustive: asked, but it cannot change the decision
            if isinstance(verdict, dict):
                if waiting and not final:
                    decision = Decision(None, {}, min(waiting))
                else:
                    decision = Decision(answer.identifier.name, verdict, None, answer.identifier)
                if not self.exhaustive:
                    still_open.extend(self._open[index + 1 :])  # worse precedence: cannot change this
                    break
                continue
            if verdict > 0:
                waiting.append(verdict)
        if decision is None:
            decision = Decision(None, {}, min(waiting)) if waiting and not final else Decision(None, {}, None)
        self._open = still_open
        self._decision = decision
        self._wake = min(waiting, default=0)
        return decision

    def _ask(self, answer: Answer, data: bytes) -> Fields | int | None:
        identifier = answer.identifier
        try:
            if identifier.trusted:
                if answer.session is None:
                    answer.session = identifier.start()
                raw = answer.session(data)
            else:
                raw = self.guard(identifier, data)
            return check_verdict(identifier.name, data, raw)
        except Exception as exc:
            answer.error = f"{type(exc).__name__}: {exc}"
            self.errors.append((identifier, answer.error))
            return None


def identify(identifiers: Iterable[Identifier], data: bytes, final: bool = False) -> Decision:
    """One-shot identification of a complete sample (the CLI and tests use this)."""
    return Identification(list(identifiers)).feed(data, final=final)
