"""``user:`` / ``group:``: names must exist on the machine; numeric ids are taken as they are."""

from __future__ import annotations

import pytest

from passthru.config import ConfigErrors, load_config_text

BASE = "listen: [127.0.0.1:8443]\nroutes: []\n"


def test_existing_names_and_numeric_ids_are_accepted() -> None:
    config = load_config_text(BASE + "user: nobody\ngroup: '0'\n", "config.yaml")
    assert (config.user, config.group) == ("nobody", "0")
    assert load_config_text(BASE, "config.yaml").user is None


def test_unknown_user_and_group_are_errors_at_their_position() -> None:
    with pytest.raises(ConfigErrors) as errors:
        load_config_text(BASE + "user: no-such-user-here\ngroup: no-such-group-here\n", "config.yaml")
    assert str(errors.value).splitlines() == [
        "config.yaml:3:7: no user named 'no-such-user-here' on this machine",
        "config.yaml:4:8: no group named 'no-such-group-here' on this machine",
    ]


def test_a_list_of_protocols_gets_a_plain_message() -> None:
    with pytest.raises(ConfigErrors) as errors:
        load_config_text(
            "listen: [127.0.0.1:8443]\nroutes:\n  - {name: a, match: {protocol: [ssh, tls]}, to: 127.0.0.1:1}\n",
            "config.yaml",
        )
    assert str(errors.value) == (
        "config.yaml:3:33: routes[1].match.protocol takes one protocol name; write one route per protocol"
    )
