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
only untrusted ones (user files) go through ``guard``, which contains them. The server's engine
(with a ``Prepared`` set) asks only the identifiers that have not already refused the connection's
opening (``prefilter``), and none after the first match (rule 3: they cannot change the
decision). Identification runs on every connection, so its own path avoids what costs most in
CPython: objects built per read (slotted answers, updated in place) and repeated passes over them
(one pass asks, drops the "no match" ones and decides).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from passthru.identify.base import Fields, Identifier, IdentifyFunc, check_verdict
from passthru.identify.prefilter import Prefilter

Guard = Callable[[Identifier, bytes], "Fields | int | None"]


def call_plain(identifier: Identifier, data: bytes) -> Fields | int | None:
    """Call an identifier with no containment (built-ins are trusted, pure and bounded)."""
    return identifier.identify(data)


@dataclass(slots=True)
class Answer:
    """What one identifier said about the bytes so far (``verdict`` as in the base API; 0 before
    it was first asked)."""

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


@dataclass(slots=True)
class Decision:
    """The outcome so far: a protocol and its fields, or how many bytes would help. Not to be
    changed once made (not a frozen dataclass: one is made per read, and freezing costs twice
    the time to build one)."""

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
    for the first bytes a connection sends, which identifiers already said "no match" to them
    (``prefilter.Prefilter``). "No match" is final by contract, so those need not be asked again
    for any connection starting with those bytes: most identifiers reject most openings, so a
    connection asks (and keeps state for) a handful, not all.

    Only trusted identifiers (built-ins and config rules) are pre-asked this way; user files are
    always asked, under their containment.
    """

    def __init__(self, identifiers: Sequence[Identifier]) -> None:
        self.source = identifiers
        self.order = ordered(identifiers)
        self.prefilter = Prefilter(self.order)

    def candidates(self, first: int) -> tuple[Identifier, ...]:
        """The identifiers, in order, that a connection starting with this byte must ask."""
        return self.prefilter.first_byte(first)

    def answers(self, data: bytes) -> list[Answer]:
        """Fresh answers for a connection whose first read is ``data`` (not empty)."""
        return [Answer(identifier) for identifier in self.prefilter.candidates(data)]


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


class Identification:
    """Per-connection identification state: feed it the growing prefix, read the decision.

    With a ``prepared`` set (the server's way), ``identifiers`` is ignored, the answers are made
    at the first non-empty read for the prefiltered candidates only, and the identifiers after the
    first match in consultation order are not asked: by rule 3 only those before it can still
    change the decision (their ``answers`` keep the verdict 0, never asked). Without one (the
    ``passthru identify`` command), every identifier is asked, so ``--explain`` shows them all.
    """

    __slots__ = ("_decision", "_open", "_wake", "answers", "errors", "guard", "identifiers", "prepared")

    def __init__(
        self, identifiers: Sequence[Identifier], guard: Guard = call_plain, prepared: Prepared | None = None
    ) -> None:
        self.identifiers = identifiers
        self.guard = guard
        self.prepared = prepared
        self.answers: list[Answer] = [] if prepared is not None else [Answer(i) for i in ordered(identifiers)]
        self.errors: list[tuple[Identifier, str]] = []
        self._open = self.answers  # those still to be heard, in order (a new list after each feed)
        self._decision: Decision | None = None
        self._wake = 0  # the fewest bytes any identifier still waiting asked for (0: none waits)

    def feed(self, data: bytes, final: bool = False) -> Decision:
        """Re-run the identifiers that could still change their mind on ``data``."""
        size = len(data)
        if not final and size < self._wake and self._decision is not None:
            return self._decision  # nobody is due: a 16 KiB record trickling in asks no one
        if self.prepared is not None and not self.answers and size:
            self.answers = self._open = self.prepared.answers(data)
        still: list[Answer] = []
        match: Answer | None = None
        waiting = 0  # the fewest bytes asked for by an identifier ahead of the first match
        wake = 0
        for answer in self._open:
            verdict = answer.verdict
            if verdict.__class__ is int and verdict <= size:  # type: ignore[operator]
                verdict = answer.verdict = self._ask(answer, data)
            if verdict is None:
                continue
            still.append(answer)
            if verdict.__class__ is dict:
                if match is None:
                    match = answer
                if self.prepared is not None:
                    break  # those after the first match cannot change the decision: not asked
            else:
                if not wake or verdict < wake:  # type: ignore[operator]
                    wake = verdict  # type: ignore[assignment]
                if match is None and (not waiting or verdict < waiting):  # type: ignore[operator]
                    waiting = verdict  # type: ignore[assignment]
        self._open = still
        self._wake = wake
        if waiting and not final:
            decision = Decision(None, {}, waiting)
        elif match is not None:
            decision = Decision(match.identifier.name, match.verdict, None, match.identifier)  # type: ignore[arg-type]
        else:
            decision = Decision(None, {}, None)
        self._decision = decision
        return decision

    def _ask(self, answer: Answer, data: bytes) -> Fields | int | None:
        identifier = answer.identifier
        try:
            if not identifier.trusted:
                return check_verdict(identifier.name, data, self.guard(identifier, data))
            session = answer.session
            if session is None:  # ``identifier.start()``, inline: it runs for every candidate
                factory = identifier.session
                session = answer.session = identifier.identify if factory is None else factory()
            raw = session(data)
            # A trusted identifier's plain verdicts pass as they are (the property and fuzz tests
            # hold the built-ins to the contract); anything else gets the full check.
            if raw is None or (raw.__class__ is int and raw > len(data)) or raw.__class__ is dict:
                return raw
            return check_verdict(identifier.name, data, raw)
        except Exception as exc:
            answer.error = f"{type(exc).__name__}: {exc}"
            self.errors.append((identifier, answer.error))
            return None


def identify(identifiers: Iterable[Identifier], data: bytes, final: bool = False) -> Decision:
    """One-shot identification of a complete sample (the CLI and tests use this)."""
    return Identification(list(identifiers)).feed(data, final=final)
