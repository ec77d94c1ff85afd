"""Passthru's configuration: load and validate ``config.yaml`` (every error with file:line:column),
and edit it from the command line without disturbing comments or layout."""

from passthru.config.errors import ConfigError, ConfigErrors
from passthru.config.loader import ConfigSource, load_config, load_config_text, read_config
from passthru.config.model import Config, DeclarativeIdentifier, Endpoint, Limits, Listener, Route, Timeouts
from passthru.config.units import parse_duration, parse_size

__all__ = [
    "Config",
    "ConfigError",
    "ConfigErrors",
    "ConfigSource",
    "DeclarativeIdentifier",
    "Endpoint",
    "Limits",
    "Listener",
    "Route",
    "Timeouts",
    "load_config",
    "load_config_text",
    "parse_duration",
    "parse_size",
    "read_config",
]
