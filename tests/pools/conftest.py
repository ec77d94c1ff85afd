"""``pool(body, connect=...)``: Passthru on a fresh port with a chosen ``timeouts.connect``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.passthru_process import PassthruProcess


@pytest.fixture
def pool(passthru) -> Callable[..., PassthruProcess]:
    """The shared ``passthru`` fixture, with ``connect`` naming ``timeouts.connect``."""

    def start(body: str, *, connect: str = "2s") -> PassthruProcess:
        return passthru(body, connect_timeout=connect)

    return start
