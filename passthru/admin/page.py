"""The status page: one HTML file (``page.html``) with its style and script inline, no external
asset, so it works offline and behind any firewall. Its Content-Security-Policy allows exactly
that inline script and style (by hash) and requests to this origin, nothing else."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _inline(tag: str, html: str) -> str:
    (body,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    return body


_TEXT = resources.files("passthru.admin").joinpath("page.html").read_text(encoding="utf-8")
PAGE = _TEXT.encode()
PAGE_HEADERS = [
    (
        "Content-Security-Policy",
        f"default-src 'none'; script-src {_csp_hash(_inline('script', _TEXT))}; "
        f"style-src {_csp_hash(_inline('style', _TEXT))}; connect-src 'self'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
]
