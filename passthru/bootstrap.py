"""Load a config together with the user identifiers its routes may name.

Routes may name protocols defined by files in ``identifiers_dir``, so those files are loaded
before the config is validated. The directory is read from the raw YAML first (a config that
does not parse still gets its full, line-numbered errors from the real load afterwards).
"""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from passthru.config import Config, load_config
from passthru.identify import builtin_names
from passthru.plugins import UserIdentifiers


def identifiers_dir_for(config_path: Path) -> Path:
    """Where the config says user identifiers live (default ``identifiers/`` beside it)."""
    base = config_path.absolute().parent  # not resolve(): a ConfigMap's file is a symlink
    try:
        raw = YAML(typ="safe").load(config_path.read_text())
    except (OSError, YAMLError, UnicodeDecodeError):
        raw = None
    value = raw.get("identifiers_dir") if isinstance(raw, dict) else None
    return base / value if isinstance(value, str) and value else base / "identifiers"


def load_with_identifiers(
    config_path: str | Path, user: UserIdentifiers | None = None
) -> tuple[Config, UserIdentifiers]:
    """The validated config and the (loaded) user identifiers; raises ConfigErrors."""
    path = Path(config_path)
    if user is None:
        user = UserIdentifiers(identifiers_dir_for(path))
        user.load_all()
    config = load_config(path, known_protocols=builtin_names() | user.names())
    return config, user
