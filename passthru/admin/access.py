"""Who may read the status (``/`` and ``/status.json``): they name routes, backends and files.

Loopback clients, and clients in ``admin.allow``, pass the address check; everyone else gets 403.
With ``admin.token_file``, every client must also present the token (401 otherwise): as
``Authorization: Bearer <token>`` (``passthru status``, scripts), or as the password of HTTP Basic
authentication with any user name (a browser asks for it, as HAProxy's ``stats auth`` does).
The token file is read on each request, so a rotated secret takes effect at once, and it is
compared in constant time. ``/metrics``, ``/healthz`` and ``/readyz`` are not affected.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from typing import Any

from passthru.config.operating import AdminAccess

log = logging.getLogger("passthru.admin")

FORBIDDEN = ("403 Forbidden", "forbidden: the status is only shown to allowed addresses (admin.allow)\n")
UNAUTHORIZED = (
    "401 Unauthorized",
    "unauthorized: send the token of admin.token_file (Bearer, or as a Basic password)\n",
)
CHALLENGE = ("WWW-Authenticate", 'Basic realm="passthru status", charset="UTF-8"')


class AccessPolicy:
    def __init__(self, access: AdminAccess | None) -> None:
        self.access = access or AdminAccess()
        self._unreadable_logged = False

    def refusal(self, environ: dict[str, Any]) -> tuple[str, str] | None:
        """None when the request may see the status, else (HTTP status, body)."""
        if not self.address_allowed(environ.get("REMOTE_ADDR", "")):
            return FORBIDDEN
        if self.access.token_file is not None and not self.token_ok(environ.get("HTTP_AUTHORIZATION", "")):
            return UNAUTHORIZED
        return None

    def address_allowed(self, text: str) -> bool:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack [::] listener sees 127.0.0.1 as ::ffff:127.0.0.1
        if address.is_loopback:
            return True
        if any(address in network for network in self.access.allow):
            return True
        # with a token and no allow list, any address may try the token
        return self.access.token_file is not None and not self.access.allow

    def token_ok(self, header: str) -> bool:
        given = presented_token(header)
        if not given:
            return False
        expected = self.read_token()
        return expected is not None and hmac.compare_digest(given.encode(), expected.encode())

    def read_token(self) -> str | None:
        assert self.access.token_file is not None
        try:
            token = self.access.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            if not self._unreadable_logged:
                self._unreadable_logged = True
                log.error(
                    "cannot read admin.token_file %s (%s): refusing the status to everyone", self.access.token_file, exc
                )
            return None
        self._unreadable_logged = False
        return token or None


def presented_token(header: str) -> str | None:
    """The token in ``Authorization: Bearer T`` or ``Basic base64(any-user:T)``."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None
