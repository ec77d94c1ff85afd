"""Load a config together with the user identifiers its routes may name.

Routes may name protocols defined by files in ``identifiers_dir``, and their ``match`` keys are
checked against what each identifier declares it reports, so those files are loaded before the
config is validated. The file is read and parsed once (:class:`ConfigSource`), which is also the
one place that knows where ``identifiers_dir`` is (default ``identifiers/`` beside the config).
"""

from __future__ import annotations

from pathlib import Path

from passthru.config import Config, ConfigErrors, ConfigSource, read_config
from passthru.config.matching import Protocols
from passthru.identify import BUILTINS
from passthru.plugins import UserIdentifiers


def identifiers_dir_for(config_path: Path) -> Path:
    """Where the config says user identifiers live (the default too when it cannot be read)."""
    try:
        return read_config(config_path).identifiers_dir
    except ConfigErrors:
        return ConfigSource(Path(config_path), None).identifiers_dir


def protocols_of(user: UserIdentifiers) -> Protocols:
    """Every protocol a route may name, with the fields it declares (None: undeclared). A user
    file that is not in service keeps its name known, so routes naming it stay valid."""
    return {**dict.fromkeys(user.names()), **{i.name: i.fields for i in user.combined(BUILTINS)}}


def load_user_identifiers(directory: Path) -> UserIdentifiers:
    user = UserIdentifiers(directory)
    user.load_all()
    return user


def load_with_identifiers(
    config_path: str | Path, user: UserIdentifiers | None = None
) -> tuple[Config, UserIdentifiers]:
    """The validated config and the (loaded) user identifiers; raises ConfigErrors."""
    source = read_config(config_path)
    if user is None:
        user = load_user_identifiers(source.identifiers_dir)
    return source.validate(protocols_of(user)), user
