"""Which identifiers a connection must ask, known from its first bytes before it is asked.

"No match" is final by contract: a trusted identifier that said None to some bytes says None to
every longer input starting with them. So an identifier set asked once, ahead of time, about an
opening (the first byte; the first ``PREFIX_BYTES`` bytes) tells every later connection with that
opening which identifiers it can skip. For ``GET / HTTP/1.1`` that leaves ``http`` and ``redis``
of the six identifiers that accept a ``G``; for a TLS record header, ``tls`` alone. The engine
then keeps state for, and asks, only those.

Only trusted identifiers (built-ins, config rules: pure and bounded) are asked ahead; user files
are always asked on the connection, under their containment. A trusted identifier that raises
when asked ahead stays a candidate (it is then asked, and contained, per connection).

Bounded memory, and no cost for openings seen once. The first-byte table has at most 256
entries. Openings are chosen by clients, and some protocols put per-connection values early (a
DNS message ID at bytes 2-3, a MongoDB request ID at 4-7), so an opening is only noted the first
time it is seen (its connection asks the first byte's identifiers) and narrowed the second time;
the table holds at most ``MAX_PREFIXES`` openings and is emptied when full. A flood of random
openings thus costs a dictionary insertion per connection and evicts common openings, which the
next two connections with them put back.
"""

from __future__ import annotations

from collections.abc import Sequence

from passthru.identify.base import Identifier

#: How much of the first read keys the table of openings: a TLS record and handshake header and
#: the hello's version (10 bytes; the client random starts at byte 11), an HTTP method and the
#: start of its target.
PREFIX_BYTES = 10
#: Openings remembered at most (about 1 MiB at worst: a 10-byte key and a short tuple each).
MAX_PREFIXES = 4096
#: What the table of openings gives for one never seen (it holds None for one seen once).
UNSEEN = object()


class Prefilter:
    """The identifiers (a subset of ``order``, in that order) that a connection must ask, by the
    first byte and by the first ``PREFIX_BYTES`` of its first read."""

    def __init__(self, order: Sequence[Identifier], max_prefixes: int = MAX_PREFIXES) -> None:
        self.order = tuple(order)
        self.max_prefixes = max_prefixes
        self._first: dict[int, tuple[Identifier, ...]] = {}
        self._prefixes: dict[bytes, tuple[Identifier, ...] | None] = {}

    def __len__(self) -> int:
        """Openings remembered now, narrowed or noted (beyond the first-byte table)."""
        return len(self._prefixes)

    def first_byte(self, first: int) -> tuple[Identifier, ...]:
        """The identifiers a connection starting with this byte must ask."""
        known = self._first.get(first)
        if known is None:
            known = self._first[first] = without_refusals(self.order, bytes((first,)))
        return known

    def candidates(self, data: bytes) -> tuple[Identifier, ...]:
        """The identifiers a connection whose first read is ``data`` (not empty) must ask."""
        key = data[:PREFIX_BYTES]
        known = self._prefixes.get(key, UNSEEN)
        if known.__class__ is tuple:
            return known  # type: ignore[return-value]
        first = self.first_byte(key[0])
        if len(key) == 1 or not any(identifier.trusted for identifier in first):
            return first  # nothing more to learn from the longer opening
        if known is UNSEEN:  # noted, and narrowed if it comes again
            if len(self._prefixes) >= self.max_prefixes:
                self._prefixes.clear()
            self._prefixes[key] = None
            return first
        narrowed = without_refusals(first, key)
        self._prefixes[key] = narrowed
        return narrowed


def without_refusals(identifiers: Sequence[Identifier], opening: bytes) -> tuple[Identifier, ...]:
    """``identifiers`` less the trusted ones that say "no match" to ``opening``."""
    return tuple(i for i in identifiers if not (i.trusted and says_no(i, opening)))


def says_no(identifier: Identifier, data: bytes) -> bool:
    """True when the identifier answers "no match" to ``data`` (one that raises is kept)."""
    try:
        return identifier.identify(data) is None
    except Exception:  # a broken identifier is asked normally (and contained) per connection
        return False
