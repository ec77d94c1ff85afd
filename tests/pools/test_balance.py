"""The balance algorithms, pure: distribution, smoothness, stability, and the failover order."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from passthru.config.addresses import parse_endpoint
from passthru.config.model import Route
from passthru.server.backends import Backends
from passthru.server.upstream import Balancer

NAMES = "abcdef"


def balancer(balance: str, weights: tuple[int, ...]) -> tuple[Balancer, Backends]:
    endpoints = tuple(parse_endpoint(f"127.0.0.1:{9001 + i}") for i in range(len(weights)))
    backends = Backends()
    route = Route("pool", None, {}, endpoints, balance, weights=weights)
    return Balancer(route, backends), backends


def name(b: Balancer, endpoint) -> str:
    return NAMES[[m.endpoint for m in b.members].index(endpoint)]


def order(b: Balancer, client: str = "192.0.2.1") -> str:
    return "".join(name(b, e) for e in b.order(client))


def picks(b: Balancer, n: int, client: str = "192.0.2.1") -> str:
    return "".join(order(b, client)[0] for _ in range(n))


def mark_down(b: Balancer, letter: str) -> None:
    b.members[NAMES.index(letter)].state.connect_failed("connection refused", "route pool")


def mark_up(b: Balancer, letter: str) -> None:
    b.members[NAMES.index(letter)].state.connect_succeeded("route pool")


# -- round_robin ----------------------------------------------------------------------------------


def test_round_robin_is_nginx_smooth_weighted() -> None:
    b, _ = balancer("round_robin", (5, 1, 1))
    assert picks(b, 14) == "aabacaa" * 2  # nginx's documented sequence: interleaved, no burst


def test_round_robin_spreads_by_weight() -> None:
    b, _ = balancer("round_robin", (3, 1))
    assert Counter(picks(b, 400)) == {"a": 300, "b": 100}
    b, _ = balancer("round_robin", (1, 1, 1))
    assert picks(b, 6) == "abcabc"


def test_round_robin_skips_down_backends_and_tries_them_last() -> None:
    b, _ = balancer("round_robin", (1, 1, 1))
    mark_down(b, "b")
    assert set(picks(b, 10)) == {"a", "c"}
    assert order(b)[-1] == "b"
    mark_up(b, "b")
    assert Counter(picks(b, 30)) == {"a": 10, "b": 10, "c": 10}


# -- first ------------------------------------------------------------------------------------------


def test_first_is_listed_order_and_ignores_weights() -> None:
    b, _ = balancer("first", (1, 9, 1))
    assert order(b) == "abc"
    assert picks(b, 5) == "aaaaa"
    mark_down(b, "a")
    assert order(b) == "bca"  # the first UP one, the other UP ones, then the DOWN one


# -- least_conn -------------------------------------------------------------------------------------


def test_least_conn_prefers_fewest_connections_per_weight() -> None:
    b, _ = balancer("least_conn", (1, 1, 1))
    a, bb, c = (m.state for m in b.members)
    a.active, bb.active, c.active = 5, 1, 3
    assert order(b) == "bca"
    b2, _ = balancer("least_conn", (4, 1))
    b2.members[0].state.active, b2.members[1].state.active = 3, 1  # 3/4 < 1/1
    assert order(b2)[0] == "a"


def test_least_conn_breaks_ties_round_robin_by_weight() -> None:
    b, _ = balancer("least_conn", (1, 1, 1))
    assert picks(b, 6) == "abcabc"  # idle pool: nobody holds a connection
    b, _ = balancer("least_conn", (3, 1))
    assert Counter(picks(b, 40)) == {"a": 30, "b": 10}


def test_least_conn_counts_acquired_and_released_connections() -> None:
    b, _ = balancer("least_conn", (1, 1))
    first = b.order("x")[0]
    b.connected(first)  # held open
    assert name(b, b.order("x")[0]) != name(b, first)
    b.release(first)
    b.release(first)  # a double release never goes negative
    assert b.members[0].state.active == 0


# -- source_hash ------------------------------------------------------------------------------------

CLIENTS = [f"10.{i // 256 % 256}.{i % 256}.7" for i in range(6000)]


def test_source_hash_is_sticky_per_client() -> None:
    b, _ = balancer("source_hash", (1, 1, 1))
    for client in CLIENTS[:50]:
        assert len({order(b, client) for _ in range(5)}) == 1


def test_source_hash_spreads_by_weight() -> None:
    b, _ = balancer("source_hash", (1, 1, 2))
    counts = Counter(order(b, client)[0] for client in CLIENTS)
    assert counts["c"] == pytest.approx(3000, rel=0.07)
    assert counts["a"] == pytest.approx(1500, rel=0.1)
    assert counts["b"] == pytest.approx(1500, rel=0.1)


def test_source_hash_moves_only_the_clients_of_a_down_backend() -> None:
    b, _ = balancer("source_hash", (1, 1, 1, 1))
    before = {client: order(b, client) for client in CLIENTS}
    mark_down(b, "c")
    after = {client: order(b, client) for client in CLIENTS}
    for client in CLIENTS:
        if before[client][0] != "c":
            assert after[client][0] == before[client][0]
        else:  # to its own second choice
            assert after[client][0] == before[client][1]
    moved = sum(before[c][0] == "c" for c in CLIENTS)
    assert moved == pytest.approx(len(CLIENTS) / 4, rel=0.1)
    mark_up(b, "c")
    assert {client: order(b, client) for client in CLIENTS} == before


def test_source_hash_agrees_across_processes() -> None:
    """Python's own ``hash()`` is salted per process; the choice must not be."""
    b, _ = balancer("source_hash", (1, 2, 1, 3))
    here = [order(b, client) for client in CLIENTS[:40]]
    code = (
        "from tests.pools.test_balance import balancer, order, CLIENTS\n"
        "b, _ = balancer('source_hash', (1, 2, 1, 3))\n"
        "print(' '.join(order(b, c) for c in CLIENTS[:40]))\n"
    )
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        )
        assert result.stdout.split() == here


# -- everything down ---------------------------------------------------------------------------------


@pytest.mark.parametrize("balance", ["round_robin", "least_conn", "source_hash", "first"])
def test_when_every_backend_is_down_all_are_still_tried(balance: str) -> None:
    b, _ = balancer(balance, (1, 1, 1))
    for letter in "abc":
        mark_down(b, letter)
    assert sorted(order(b)) == ["a", "b", "c"]
    if balance in ("round_robin", "least_conn"):
        assert sorted(picks(b, 3)) == ["a", "b", "c"]  # and still spread among them


def test_state_is_shared_by_every_route_naming_the_backend() -> None:
    b, backends = balancer("first", (1, 1))
    other = Balancer(Route("other", None, {}, (b.members[1].endpoint,), "first"), backends)
    mark_down(b, "b")
    assert not other.members[0].state.up
    other.connected(other.members[0].endpoint)
    assert b.members[1].state.up and b.members[1].state.active == 1
