"""Signed widget tokens: how a shop's page tells the gateway who the visitor is.

``"<customer_id>.<expires_unix>.<hex HMAC-SHA256(secret, "<customer_id>.<expires_unix>")>"``.
The shop's server signs with ``KEFU_WIDGET_SECRET``; anything missing, expired or forged
makes an anonymous visitor (product and policy questions only).
"""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(customer_id: int, *, secret: str, expires_at: float | None = None,
         ttl: float = 3600.0) -> str:
    expires = int(expires_at if expires_at is not None else time.time() + ttl)
    message = f"{int(customer_id)}.{expires}"
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"{message}.{digest}"


def verify(token: str | None, *, secret: str | None, now: float | None = None) -> int | None:
    """The customer id of a valid token, else None (never raises on bad input)."""
    if not token or not secret or not isinstance(token, str) or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts[2].lower()):
        return None
    if int(parts[1]) < (time.time() if now is None else now):
        return None
    return int(parts[0])
