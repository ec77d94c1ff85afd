"""``Targets.resolve`` without sockets: validation decisions, the every-address rule, the
bounded cache and its lifetime, shared lookups, and a resolver that does not answer."""

from __future__ import annotations

import socket
import textwrap

import gevent
import pytest

from passthru.config import Timeouts, load_config_text
from passthru.server.targets import NOT_ALLOWED, UNRESOLVED, Targets, normalized_host

ROUTE = load_config_text(
    textwrap.dedent(
        r"""
        listen: 127.0.0.1:1
        routes:
          - name: tenants
            match: {protocol: tls, sni: {regex: '(?P<tenant>[a-z0-9-]+)\.apps\.example\.com'}}
            to: "{tenant}.svc.internal:8443"
            allow: ["*.svc.internal", "10.20.0.0/16"]
        """
    ),
    "config.yaml",
).routes[0]
TIMEOUTS = Timeouts(connect=0.5, resolve=30.0)


class FakeDNS:
    """Answers from a table and counts the questions; optionally never answers."""

    def __init__(self, table: dict[str, list[str]], hang: bool = False) -> None:
        self.table, self.hang, self.asked = table, hang, []

    def __call__(self, host: str, port: int) -> list[tuple[int, tuple]]:
        self.asked.append(host)
        if self.hang:
            gevent.sleep(10)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, (address, port)) for address in self.table[host]]


def test_a_name_inside_allow_resolves_to_every_address() -> None:
    dns = FakeDNS({"acme.svc.internal": ["10.20.0.5", "10.20.1.6"]})
    target = Targets(dns).resolve(ROUTE, {"tenant": "acme"}, {}, TIMEOUTS)
    assert target.ended is None and target.route is not None
    assert [str(e) for e in target.route.to] == ["acme.svc.internal:8443", "acme.svc.internal:8443"]
    assert [e.sockaddr for e in target.route.to] == [("10.20.0.5", 8443), ("10.20.1.6", 8443)]
    assert target.route.template is None and target.route.name == "tenants"


def test_one_address_outside_the_networks_refuses_the_name() -> None:
    dns = FakeDNS({"acme.svc.internal": ["10.20.0.5", "192.168.1.1"]})
    target = Targets(dns).resolve(ROUTE, {"tenant": "acme"}, {}, TIMEOUTS)
    assert (target.ended, target.route) == (NOT_ALLOWED, None)
    assert "resolves to 192.168.1.1, outside allow" in str(target.error)


def test_unresolved_and_cached_for_a_short_while() -> None:
    dns = FakeDNS({})
    targets = Targets(dns)
    for _ in range(3):
        assert targets.resolve(ROUTE, {"tenant": "ghost"}, {}, TIMEOUTS).ended == UNRESOLVED
    assert dns.asked == ["ghost.svc.internal"]


def test_a_resolver_that_does_not_answer_is_bounded_by_the_connect_timeout() -> None:
    target = Targets(FakeDNS({}, hang=True)).resolve(ROUTE, {"tenant": "slow"}, {}, TIMEOUTS)
    assert target.ended == UNRESOLVED and "within 0.5s" in str(target.error)


def test_the_cache_is_bounded_and_answers_expire_after_timeouts_resolve() -> None:
    dns = FakeDNS({f"t{i}.svc.internal": ["10.20.0.1"] for i in range(10)})
    targets = Targets(dns, max_cached=4)
    for i in range(10):
        targets.resolve(ROUTE, {"tenant": f"t{i}"}, {}, TIMEOUTS)
    assert len(targets.cache) == 4
    targets.resolve(ROUTE, {"tenant": "t9"}, {}, TIMEOUTS)  # recent: cached
    targets.resolve(ROUTE, {"tenant": "t0"}, {}, TIMEOUTS)  # the oldest: evicted, asked again
    assert (dns.asked.count("t9.svc.internal"), dns.asked.count("t0.svc.internal")) == (1, 2)
    fleeting = Timeouts(connect=0.5, resolve=0.0)
    targets.resolve(ROUTE, {"tenant": "t5"}, {}, fleeting)
    targets.resolve(ROUTE, {"tenant": "t5"}, {}, fleeting)  # an answer lives timeouts.resolve
    assert dns.asked.count("t5.svc.internal") == 3


def test_concurrent_connections_share_one_lookup() -> None:
    class Slow(FakeDNS):
        def __call__(self, host, port):
            gevent.sleep(0.05)
            return super().__call__(host, port)

    dns = Slow({"acme.svc.internal": ["10.20.0.5"]})
    targets = Targets(dns)
    jobs = [gevent.spawn(targets.resolve, ROUTE, {"tenant": "acme"}, {}, TIMEOUTS) for _ in range(5)]
    gevent.joinall(jobs)
    assert all(job.value.route is not None for job in jobs)
    assert dns.asked == ["acme.svc.internal"]


def test_fields_fill_placeholders_and_missing_or_list_values_refuse() -> None:
    targets = Targets(FakeDNS({}))
    missing = targets.resolve(ROUTE, {}, {}, TIMEOUTS)
    assert missing.ended == NOT_ALLOWED and "no value for {tenant}" in str(missing.error)
    listed = targets.resolve(ROUTE, {}, {"tenant": ["a", "b"]}, TIMEOUTS)
    assert listed.ended == NOT_ALLOWED and "is a list" in str(listed.error)


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("Acme.SVC.internal", "acme.svc.internal"),  # upper case: folded
        ("acme.svc.internal.", "acme.svc.internal"),  # one trailing dot: the absolute form
        ("xn--bcher-kva.svc.internal", "xn--bcher-kva.svc.internal"),  # punycode: an ordinary name
        ("10.20.0.1", "10.20.0.1"),
    ],
)
def test_accepted_forms(rendered: str, expected: str) -> None:
    assert str(normalized_host(rendered)) == expected


@pytest.mark.parametrize(
    "rendered",
    ["a..b", ".a", "a.b..", "a\x00b", "bücher.svc", "a" * 254, "127.1", "-a.svc", "a-.svc", "fe80::1%eth0", ""],
)
def test_refused_forms(rendered: str) -> None:
    with pytest.raises(ValueError):
        normalized_host(rendered)


def test_waiters_get_an_answer_when_the_shared_lookup_fails_unexpectedly() -> None:
    class Broken(FakeDNS):
        def __call__(self, host, port):
            gevent.sleep(0.05)
            raise RuntimeError("resolver bug")

    targets = Targets(Broken({}))
    first = gevent.spawn(targets.resolve, ROUTE, {"tenant": "acme"}, {}, TIMEOUTS)
    gevent.sleep(0.01)
    waiter = gevent.spawn(targets.resolve, ROUTE, {"tenant": "acme"}, {}, TIMEOUTS)
    gevent.joinall([first, waiter], timeout=5)
    assert isinstance(first.exception, RuntimeError)
    assert waiter.value.ended == UNRESOLVED and "interrupted" in waiter.value.error
    assert targets.pending == {}


def test_resolve_then_answers_now_without_a_lookup_and_later_with_one() -> None:
    dns = FakeDNS({"acme.svc.internal": ["10.20.0.5"]})
    targets = Targets(dns)
    later: list = []
    refused = targets.resolve_then(ROUTE, {"tenant": "a..b"}, {}, TIMEOUTS, later.append)
    assert refused is not None and refused.ended == NOT_ALLOWED
    assert targets.resolve_then(ROUTE, {"tenant": "acme"}, {}, TIMEOUTS, later.append) is None
    gevent.sleep(0.05)
    assert [t.route.to[0].sockaddr for t in later] == [("10.20.0.5", 8443)]
    cached = targets.resolve_then(ROUTE, {"tenant": "acme"}, {}, TIMEOUTS, later.append)
    assert cached is not None and cached.route is not None  # fresh in the cache: no greenlet
    assert len(later) == 1 and dns.asked == ["acme.svc.internal"]
