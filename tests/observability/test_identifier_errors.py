"""User identifier errors reach ``passthru_user_identifier_errors_total`` by kind."""

from __future__ import annotations

from pathlib import Path

from passthru.identify.engine import Identification
from passthru.plugins import UserIdentifiers
from tests.observability.scrape import Scrape, get

BROKEN = "NAME = 'broken'\ndef identify(data)\n    return None\n"  # a syntax error
RAISES = "NAME = 'raises'\ndef identify(data):\n    raise ValueError('bug')\n"


def test_load_and_runtime_errors_are_counted(admin, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "raises.py").write_text(RAISES)
    user = UserIdentifiers(tmp_path)
    user.load_all()
    for _ in range(2):
        Identification(user.current(), guard=user.connection_guard()).feed(b"x")
    _, _, text = get(admin.address, "/metrics")
    scrape = Scrape(text)
    assert scrape.value("passthru_user_identifier_errors_total", identifier="broken", kind="load") == 1
    assert scrape.value("passthru_user_identifier_errors_total", identifier="raises", kind="runtime") == 2
