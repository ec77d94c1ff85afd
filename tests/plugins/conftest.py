"""Fixtures for the user-identifier tests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from passthru.plugins import UserIdentifiers


@pytest.fixture
def plugin_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="passthru.plugins")
    return caplog


@pytest.fixture
def make_users(tmp_path: Path):
    """UserIdentifiers over a temp dir; stopped (watcher and all) at the end of the test."""
    created: list[UserIdentifiers] = []

    def make(directory: Path | None = None, **options) -> UserIdentifiers:
        users = UserIdentifiers(directory or tmp_path, **options)
        created.append(users)
        return users

    yield make
    for users in created:
        users.stop()
