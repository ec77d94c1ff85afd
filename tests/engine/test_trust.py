"""Trust is a property (issue 12): a config rule (``identifiers:`` with prefix/at/regex) behaves
exactly like a built-in. It is pre-asked by the first-byte prefilter, runs without the user-code
time limit, and still matches after a slow user file (``identifiers/*.py``) has spent the
connection's budget on the same bytes.

Through the real pieces: the config loader, ``Runtime`` (the server's identifier set and guard),
the plugin store and its containment, and the engine; then one ``passthru run`` end to end.
"""

from __future__ import annotations

import socket
import textwrap
import time
from pathlib import Path

import pytest

from passthru.bootstrap import load_with_identifiers
from passthru.identify.base import Identifier
from passthru.identify.engine import Identification, Preparing
from passthru.plugins import UserIdentifiers
from passthru.server.runtime import Runtime, connection_guard
from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import PassthruProcess

OPENING = b"GAME/1.0 HELLO FROM A TRICKLING CLIENT\r\n"  # the rule decides once all of it arrived
RULES = """identifiers:
  - name: game
    prefix: "GAME/1.0 HELLO FROM A TRICKLING CLIENT\\r\\n"
  - name: beacon
    at: {offset: 2, bytes: {hex: "beef"}}
  - name: chat
    regex: '^CHAT/(?P<version>\\d) '
    min_length: 7
"""
#: A user file that always wants one more byte, slowly (well within the 50 ms a call may take):
#: it spends a connection's budget. It writes down the length of every prefix it was shown.
SLOW_FILE = """
import time

NAME = "asleep"  # sorts before the config rules: their match waits for its answer

def identify(data):
    time.sleep({pause})
    with open({calls!r}, "a") as calls:
        calls.write(f"{{len(data)}}\\n")
    return len(data) + 1
"""
PAUSE = 0.02  # 13 calls spend the 0.25 s budget; the client sends 40 bytes 25 ms apart


def write_setup(directory: Path, routes: str) -> Path:
    (directory / "identifiers").mkdir()
    slow = SLOW_FILE.format(pause=PAUSE, calls=str(directory / "calls.txt"))
    (directory / "identifiers" / "asleep.py").write_text(textwrap.dedent(slow))
    config = directory / "config.yaml"
    config.write_text(f"listen: [127.0.0.1:{free_port()}]\n{RULES}{routes}")
    return config


ROUTES = """routes:
  - {name: game, match: {protocol: game}, to: 127.0.0.1:9}
default: reject
"""


@pytest.fixture
def loaded(tmp_path: Path):
    """(runtime, user identifiers) from a real config. A call may take 1 s, so the slow file never
    times out however busy the machine is: only the connection budget of 0.1 s stops it."""
    config_path = write_setup(tmp_path, ROUTES)
    user = UserIdentifiers(tmp_path / "identifiers", budget=1.0, connection_budget=0.1)
    user.load_all()
    try:
        config, user = load_with_identifiers(config_path, user)
        yield Runtime.build(config), user
    finally:
        user.stop()


def named(identifiers: tuple[Identifier, ...] | list[Identifier], name: str) -> Identifier:
    return next(i for i in identifiers if i.name == name)


def test_config_rules_are_trusted_and_prefiltered_like_builtins(loaded) -> None:
    runtime, user = loaded
    prepared = Preparing()(runtime.identifiers(user))
    assert all(named(prepared.order, name).trusted for name in ("game", "beacon", "chat", "http"))
    assert not named(prepared.order, "asleep").trusted

    def asked(first: bytes) -> set[str]:
        return {identifier.name for identifier in prepared.candidates(first[0])}

    assert {"game", "http"}.isdisjoint(asked(b"X")), "pre-asked, and ruled out by their first byte"
    assert {"game", "beacon"} <= asked(b"G")
    assert "beacon" in asked(b"X"), "bytes at offset 2 say nothing of byte 0"
    assert all("asleep" in asked(bytes((b,))) for b in range(256)), "a user file is never pre-asked"


def test_config_rules_run_without_the_user_code_time_limit(loaded) -> None:
    """The containment's time limit wraps the user file only, never a config rule (nor a built-in)."""
    runtime, user = loaded
    limited: list[str] = []
    real_call = user.containment.limit.call

    def recording(function, data, budget):
        limited.append(function.__module__)
        return real_call(function, data, budget)

    user.containment.limit.call = recording  # type: ignore[method-assign]
    prepared = Preparing()(runtime.identifiers(user))
    for data, protocol in ((b"CHAT/2 hi", "chat"), (b"\x00\x00\xbe\xef", "beacon"), (OPENING, "game")):
        decision = Identification((), guard=connection_guard(user), prepared=prepared).feed(data, final=True)
        assert decision.protocol == protocol
    assert len(limited) == 3, "the user file was asked once per connection, under the limit"
    assert "passthru.config.declarative" not in limited


def test_a_config_rule_still_matches_after_a_slow_user_file_spent_the_budget(loaded) -> None:
    runtime, user = loaded
    identification = Identification((), guard=connection_guard(user), prepared=Preparing()(runtime.identifiers(user)))
    for end in range(1, len(OPENING) + 1):
        decision = identification.feed(OPENING[:end])  # one byte per read, as a trickling client
    assert (decision.protocol, decision.fields) == ("game", {})
    errors = {identifier.name: error for identifier, error in identification.errors}
    assert set(errors) == {"asleep"} and "not consulted" in errors["asleep"], errors


def test_a_running_server_routes_by_the_config_rule_while_a_user_file_spends_the_budget(tmp_path: Path) -> None:
    with TagServer("game") as game, TagServer("default") as default:
        # identify_cpu (wall time spent feeding, user calls included) is raised above the user
        # files' own 0.25 s connection budget, so that it is that budget the slow file spends.
        routes = f"""limits: {{identify_cpu: 5s}}
routes:
  - {{name: game, match: {{protocol: game}}, to: {game.address}}}
default: {default.address}
"""
        config_path = write_setup(tmp_path, routes)
        port = int(config_path.read_text().split("127.0.0.1:", 1)[1].split("]", 1)[0])
        proc = PassthruProcess(tmp_path, config_path.read_text(), [("127.0.0.1", port)])
        with proc, socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in OPENING:  # one byte per packet: the slow file is asked on every read
                client.sendall(bytes((byte,)))
                time.sleep(0.025)
            client.shutdown(socket.SHUT_WR)
            assert recv_all(client) == b"[game]" + OPENING
            log = proc.wait_for_log("protocol=game route=game")
        assert default.connections == 0, log
    shown = [int(line) for line in (tmp_path / "calls.txt").read_text().split()]
    # It always wants one more byte, so only a spent budget (or its own time-outs, which spend
    # it too) stops it being asked before the last byte, on which the rule then matched.
    assert max(shown) < len(OPENING), f"the user file was still asked: {shown}"
