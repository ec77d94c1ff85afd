"""Protocol identification: the API, the built-in identifiers and the engine that combines them."""

from passthru.identify.base import Fields, Identifier
from passthru.identify.engine import Decision, Identification, identify
from passthru.identify.registry import BUILTINS, builtin_names

__all__ = ["BUILTINS", "Decision", "Fields", "Identification", "Identifier", "builtin_names", "identify"]
