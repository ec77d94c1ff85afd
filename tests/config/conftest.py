"""Helpers for config tests: load YAML text as ``config.yaml`` and read back the error lines."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from passthru.config import Config, ConfigErrors, load_config_text


@pytest.fixture
def load() -> Callable[..., Config]:
    def load(text: str, **kwargs) -> Config:
        return load_config_text(textwrap.dedent(text), "config.yaml", **kwargs)

    return load


@pytest.fixture
def errors() -> Callable[..., list[str]]:
    """The error lines for a config that must be refused."""

    def errors(text: str, **kwargs) -> list[str]:
        with pytest.raises(ConfigErrors) as info:
            load_config_text(textwrap.dedent(text), "config.yaml", **kwargs)
        return str(info.value).splitlines()

    return errors
