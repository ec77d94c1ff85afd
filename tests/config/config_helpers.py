"""Shared constants for the config tests."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "configs"

MINIMAL = """\
listen: 127.0.0.1:8443
routes:
  - name: ssh
    match: {protocol: ssh}
    to: 127.0.0.1:22
"""
