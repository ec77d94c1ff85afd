"""The ``balance`` algorithms: rank a route's backends for one new connection. Pure, no I/O.

Each ranks a list of members (the route's UP backends, or its DOWN ones) best first. With
``pick`` the first one is this connection's choice and the algorithm advances its own state
(round-robin counters); without it the ranking is only the fallback order and changes nothing.

* ``first``: listed order; weights are ignored (a primary with standbys).
* ``round_robin``: smooth weighted round robin, nginx's algorithm: every pick adds each
  member's weight to its running ``current``, takes the highest (the earliest listed on a tie)
  and subtracts the total weight from it. Weights 5:1:1 give ``a a b a c a a``: interleaved,
  never a burst of one backend. The fallback order is by ``current`` (who would be next).
* ``least_conn``: fewest active connections divided by weight; ties are broken by the same
  smooth weighted round robin among the tied members (so idle pools still spread by weight).
* ``source_hash``: weighted rendezvous (highest-random-weight) hashing of the client address.
  Each (client, backend) pair gets a pseudo-random ``u`` in (0, 1) from BLAKE2b of the client
  address and the backend as configured; the score ``weight / -ln(u)`` wins with probability
  proportional to the weight. The hash is not Python's ``hash()`` (salted per process), so every
  worker and every restart agrees; and when a backend goes down only the clients it served move
  (each to its own second choice), the others keep theirs. An IPv4 client reaching an IPv6
  listener (``::ffff:192.0.2.7``) hashes as ``192.0.2.7``, so it lands where it would on IPv4.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

from passthru.config import Endpoint
from passthru.server.backends import BackendState


@dataclass(eq=False)
class Member:
    """One backend of one route's balancer."""

    endpoint: Endpoint
    weight: int
    state: BackendState
    #: Smooth weighted round robin's running weight (this balancer's own, not shared).
    current: int = 0

    @property
    def name(self) -> str:
        return str(self.endpoint)


Rank = Callable[[list[Member], str, bool], list[Member]]


def first(members: list[Member], client: str, pick: bool) -> list[Member]:
    return list(members)


def smooth_pick(members: list[Member]) -> Member:
    """nginx's smooth weighted round robin: one step, returns the chosen member."""
    total = 0
    best = members[0]
    for member in members:
        member.current += member.weight
        total += member.weight
        if member.current > best.current:
            best = member
    best.current -= total
    return best


def round_robin(members: list[Member], client: str, pick: bool) -> list[Member]:
    chosen = smooth_pick(members) if pick else None
    rest = sorted((m for m in members if m is not chosen), key=lambda m: -m.current)
    return [chosen, *rest] if chosen is not None else rest


def load(member: Member) -> float:
    """Active connections per unit of weight (exact ties compare equal: IEEE division is
    correctly rounded, so equal fractions give equal floats)."""
    return member.state.active / member.weight


def least_conn(members: list[Member], client: str, pick: bool) -> list[Member]:
    ranked = sorted(members, key=load)
    if not pick or len(ranked) == 1:
        return ranked
    lowest = load(ranked[0])
    tied = [m for m in ranked if load(m) == lowest]
    chosen = smooth_pick(tied) if len(tied) > 1 else tied[0]
    return [chosen, *(m for m in ranked if m is not chosen)]


def rendezvous_score(client: str, member: Member) -> float:
    """``weight / -ln(u)`` with ``u`` in (0, 1) from a keyed, process-independent hash."""
    digest = hashlib.blake2b(f"{client}\0{member.name}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)
    return member.weight / -math.log(u)


def source_hash(members: list[Member], client: str, pick: bool) -> list[Member]:
    if client.startswith("::ffff:") and "." in client:  # an IPv4 client on an IPv6 listener
        client = client[7:]
    return sorted(members, key=lambda m: -rendezvous_score(client, m))


POLICIES: dict[str, Rank] = {
    "first": first,
    "round_robin": round_robin,
    "least_conn": least_conn,
    "source_hash": source_hash,
}
