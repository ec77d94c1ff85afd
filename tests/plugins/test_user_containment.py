"""Containment at run time: budgets, interruption, failure counting, disabling, per-connection
bounds, and what the guard costs."""

from __future__ import annotations

import re
import signal
import threading
import time
import traceback
from collections.abc import Callable

import gevent
import pytest

from passthru.identify import Identification
from passthru.identify.registry import BUILTINS
from passthru.plugins import ACTIVE, DISABLED, BudgetExhausted, IdentifierFailed, IdentifierTimeout
from passthru.plugins.timelimit import Overrun, TimeLimit

RUNAWAY = """
NAME = "runaway"

def identify(data: bytes):
    if data.startswith(b"LOOP"):
        n = 0
        while True:
            n += 1
    if data.startswith(b"SWALLOW"):
        n = 0
        while True:
            try:
                n += 1
            except Exception:
                pass
    if data.startswith(b"SLEEP"):
        import time
        time.sleep(10)
    if data.startswith(b"ONCE"):
        try:
            while True:
                pass
        except BaseException:
            pass
        while True:
            pass
    if data.startswith(b"BAD"):
        return {"n": 1 / 0}
    if data.startswith(b"EXIT"):
        raise SystemExit(1)
    if data.startswith(b"STR"):
        return "yes"
    if data.startswith(b"OK"):
        return {}
    return None
"""


def line_with(needle: str) -> int:
    return next(n for n, line in enumerate(RUNAWAY.splitlines(), 1) if needle in line)


@pytest.fixture
def runaway(tmp_path, make_users):
    (tmp_path / "runaway.py").write_text(RUNAWAY)
    users = make_users()
    users.load_all()
    (identifier,) = users.current()
    return users, identifier


@pytest.mark.parametrize("data", [b"LOOP", b"SWALLOW", b"SLEEP", b"ONCE"])
def test_a_runaway_call_is_interrupted_after_its_budget(runaway, data):
    users, identifier = runaway
    started = time.perf_counter()
    with pytest.raises(IdentifierTimeout) as caught:
        users.guard(identifier, data)
    elapsed = time.perf_counter() - started
    assert 0.045 < elapsed < 0.2, elapsed
    assert str(caught.value).startswith(f"{identifier.source}:")
    assert "ran longer than 50 ms, interrupted at line" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "error", "line"),
    [
        (b"BAD", "ZeroDivisionError: division by zero", line_with("1 / 0")),
        (b"EXIT", "SystemExit: 1", line_with("SystemExit")),
        (b"STR", "returned str", line_with("def identify")),  # a bad verdict points at identify()
    ],
)
def test_exceptions_and_bad_verdicts_become_failures_with_file_and_line(runaway, data, error, line):
    users, identifier = runaway
    with pytest.raises(IdentifierFailed) as caught:
        users.guard(identifier, data)
    assert str(caught.value).startswith(f"{identifier.source}:{line}: ")
    assert error in str(caught.value)


def test_the_engine_reports_a_failure_as_no_match_and_other_protocols_still_win(runaway):
    users, _ = runaway
    identification = Identification(list(users.combined()), guard=users.connection_guard())
    decision = identification.feed(b"LOOP / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert decision.protocol is None  # "LOOP" is no HTTP method: nothing matches, nothing hangs
    ((failed, message),) = identification.errors
    assert failed.name == "runaway" and "IdentifierTimeout" in message and "runaway.py:" in message

    identification = Identification(list(users.combined()), guard=users.connection_guard())
    assert identification.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").protocol == "http"


def test_other_connections_are_delayed_by_one_budget_at_most(runaway):
    """The hub comes back to other greenlets as soon as the runaway call is cut off."""
    users, identifier = runaway
    gaps = []

    def ticker():
        last = time.perf_counter()
        for _ in range(40):
            gevent.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    def connection():
        for _ in range(3):
            with pytest.raises(IdentifierTimeout):
                users.guard(identifier, b"LOOP")
            gevent.sleep(0.01)

    gevent.joinall([gevent.spawn(ticker), gevent.spawn(connection)], raise_error=True)
    assert max(gaps) < 0.05 + 0.1, max(gaps)  # one budget, plus slack for a busy machine


def test_five_failures_in_a_row_disable_until_the_file_changes(tmp_path, runaway, plugin_log):
    users, identifier = runaway
    changes = []
    users.on_change(lambda: changes.append(users.names()))
    for _ in range(4):
        with pytest.raises(IdentifierFailed):
            users.guard(identifier, b"BAD")
    assert users.guard(identifier, b"OK") == {}, "a success resets the count"
    for _ in range(4):
        with pytest.raises(IdentifierFailed):
            users.guard(identifier, b"BAD")
    assert users.names() == frozenset({"runaway"})
    with pytest.raises(IdentifierFailed):
        users.guard(identifier, b"LOOP")

    assert users.current() == () and changes == [frozenset()]
    (status,) = users.statuses()
    assert (status.status, status.serving) == (DISABLED, False)
    assert "ran longer than" in status.last_error
    disabled = [r.getMessage() for r in plugin_log.records if "disabled after 5 failures" in r.getMessage()]
    assert len(disabled) == 1 and disabled[0].startswith(f"{identifier.source}:")
    assert users.guard(identifier, b"OK") is None, "connections holding the old snapshot skip it"

    users.rescan()  # same content: stays disabled
    assert users.current() == ()
    (tmp_path / "runaway.py").write_text(RUNAWAY + "\n# fixed\n")
    users.rescan()
    assert users.names() == frozenset({"runaway"})
    assert [s.status for s in users.statuses()] == [ACTIVE]


def test_a_broken_save_of_a_disabled_file_keeps_it_disabled(tmp_path, runaway):
    users, identifier = runaway
    for _ in range(5):
        with pytest.raises(IdentifierFailed):
            users.guard(identifier, b"BAD")
    (tmp_path / "runaway.py").write_text("def identify(:\n")
    users.rescan()
    (status,) = users.statuses()
    assert (status.status, status.serving) == ("rejected", False)
    assert users.current() == ()


def test_old_versions_are_contained_but_do_not_count(tmp_path, runaway):
    users, old = runaway
    (tmp_path / "runaway.py").write_text(RUNAWAY + "\n# v2\n")
    users.rescan()
    for _ in range(6):
        with pytest.raises(IdentifierTimeout):
            users.guard(old, b"LOOP")
    assert users.names() == frozenset({"runaway"})


def test_a_connection_stops_consulting_user_identifiers_after_its_budget(tmp_path, make_users):
    (tmp_path / "slow.py").write_text("import time\n\ndef identify(data):\n    time.sleep(0.03)\n    return 1000\n")
    users = make_users(connection_budget=0.1)
    users.load_all()
    (slow,) = users.current()
    guard = users.connection_guard()
    started = time.perf_counter()
    calls = 0
    with pytest.raises(BudgetExhausted):
        while True:
            guard(slow, b"x" * (calls + 1))
            calls += 1
    # consulted while under 0.1 s: about three 30 ms calls, never more than the total plus one budget
    assert 2 <= calls <= 4 and guard.spent < 0.1 + 0.05
    assert time.perf_counter() - started < 0.1 + 0.05 + 0.05
    http = next(i for i in BUILTINS if i.name == "http")
    assert guard(http, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")["host"] == "a", "built-ins still run"
    assert users.connection_guard()(slow, b"x") == 1000, "each connection has its own budget"
    assert users.names() == frozenset({"slow"}), "an exhausted budget is not the identifier's failure"


def test_builtins_are_called_directly(monkeypatch):
    limit_calls = []
    tls = next(i for i in BUILTINS if i.name == "tls")
    from passthru.plugins.containment import Containment

    containment = Containment(0.05, 5, lambda *a: None, __import__("logging").getLogger("t"))
    monkeypatch.setattr(containment.limit, "call", lambda *a: limit_calls.append(a))
    assert containment.call(tls, b"GET /") is None
    assert limit_calls == []


def test_sigalrm_is_given_back_once_calls_stop(runaway):
    """The time limit owns SIGALRM only while user code keeps being called: once calls stop for
    its ``idle`` time it gives back the previous handler, and a previous timer fires then."""
    users, identifier = runaway
    fired = []

    def handler(signum, frame):
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(IdentifierTimeout):
            users.guard(identifier, b"LOOP")
        assert users.guard(identifier, b"OK") == {}
        assert signal.getsignal(signal.SIGALRM) is not handler, "armed: the limit owns SIGALRM"
        deadline = time.monotonic() + 5
        while signal.getsignal(signal.SIGALRM) is not handler and time.monotonic() < deadline:
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGALRM) is handler, "the previous handler was not given back"
        time.sleep(0.05)
        assert fired == [signal.SIGALRM], "the previous timer did not fire once given back"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_call_makes_no_system_call_once_armed():
    """Arming costs system calls once; the calls that follow only set a deadline."""
    limit = TimeLimit()
    calls = []
    original = __import__("passthru.plugins.timelimit", fromlist=["_sig"])._sig
    try:
        limit.call(lambda _: None, None, 0.05)  # arms
        import passthru.plugins.timelimit as module

        class Spy:
            def __getattr__(self, name):
                if name in ("signal", "setitimer", "getitimer"):  # the system calls
                    calls.append(name)
                return getattr(original, name)

        module._sig = Spy()
        for _ in range(100):
            limit.call(lambda _: None, None, 0.05)
        assert calls == []
    finally:
        import passthru.plugins.timelimit as module

        module._sig = original
        limit.disarm()


def test_off_the_main_thread_a_slow_call_is_measured_afterwards(tmp_path, make_users):
    (tmp_path / "slow.py").write_text("import time\n\ndef identify(data):\n    time.sleep(0.08)\n    return None\n")
    users = make_users()
    users.load_all()
    (slow,) = users.current()
    errors = []

    def run():
        try:
            users.guard(slow, b"x")
        except IdentifierTimeout as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert len(errors) == 1 and re.search(r"ran longer than 50 ms \(took \d+ ms\)", errors[0]), errors


def raised_in(exc: BaseException, func: Callable[..., object]) -> bool:
    """Whether ``exc`` was raised while ``func`` was running (its frame is in the traceback)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is func.__code__:
            return True
        tb = tb.tb_next
    return False


def test_an_alarm_after_the_call_returned_does_not_hit_the_caller():
    """A call that ends right at its deadline, many times. ``Overrun`` may interrupt the call
    itself; it must never be raised once the call returned (in the guard's own clean-up, or in
    the caller), and no alarm may reach the previous handler afterwards."""
    limit = TimeLimit(tick=0.001)
    stray: list[int] = []
    escaped: list[str] = []

    def work(_: None) -> int:
        return sum(range(3000))

    previous = signal.signal(signal.SIGALRM, lambda signum, _frame: stray.append(signum))
    try:
        for _ in range(200):
            try:
                limit.call(work, None, 0.00005)
            except Overrun as exc:
                if not raised_in(exc, work):
                    escaped.append("".join(traceback.format_tb(exc.__traceback__)))
        time.sleep(0.01)  # no alarm may arrive out here
    finally:
        limit.disarm()  # gives SIGALRM back to the test's handler, which may not be called
        signal.signal(signal.SIGALRM, previous)
    assert escaped == [], f"Overrun raised after the call returned, {len(escaped)} times; first:\n{escaped[0]}"
    assert stray == [], f"{len(stray)} alarms reached the previous handler after the calls"


def test_guard_overhead_per_call(runaway, record_property):
    """The cost of containment on a trivial identifier (reported; asserted loosely).

    Best of several rounds, so that a busy machine measures the code rather than the scheduler.
    """
    users, _ = runaway
    (identifier,) = users.current()
    guard = users.connection_guard()
    guard.total = float("inf")

    def per_call(func, *args) -> float:
        best = float("inf")
        for _ in range(7):
            started = time.perf_counter()
            for _ in range(3000):
                func(*args)
            best = min(best, (time.perf_counter() - started) / 3000)
        return best

    direct = per_call(identifier.identify, b"OK")
    guarded = per_call(guard, identifier, b"OK")
    overhead_us = (guarded - direct) * 1e6
    record_property("guard_overhead_us", round(overhead_us, 2))
    print(f"guard overhead: {overhead_us:.2f} us per call (direct {direct * 1e6:.2f} us)")
    assert overhead_us < 50
