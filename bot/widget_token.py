"""Signed widget tokens: how a shop's page tells the gateway who the visitor is.

``"<customer_id>.<expires_unix>.<hex HMAC-SHA256(secret, "<customer_id>.<expires_unix>")>"``.
The shop's server signs with ``KEFU_WIDGET_SECRET``; anything missing, expired or forged
makes an anonymous visitor (product and policy questions only).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

# ASCII only: str.isdigit() also accepts "²" or "٣", and hmac.compare_digest raises on non-ASCII
# text, so a crafted token used to crash the handshake instead of making an anonymous visitor.
_TOKEN = re.compile(r"([0-9]{1,12})\.([0-9]{1,12})\.([0-9a-fA-F]{64})", re.ASCII)


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
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    customer, expires, signature = match.groups()
    expected = hmac.new(secret.encode(), f"{customer}.{expires}".encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        return None
    if int(expires) < (time.time() if now is None else now):
        return None
    return int(customer)
