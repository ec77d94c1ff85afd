"""Passthru: a Layer-4 TCP connection de-multiplexer."""

__version__ = "0.1.0"
