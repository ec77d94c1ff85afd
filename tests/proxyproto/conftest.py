"""Fixtures for the PROXY protocol tests: one real nginx (reading PROXY headers) for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.proxyproto.peers import Nginx, require


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    require("nginx")
    server = Nginx(tmp_path_factory.mktemp("nginx")).start()
    yield server
    server.stop()
