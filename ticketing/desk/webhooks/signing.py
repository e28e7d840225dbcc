"""Signing webhook requests the way Stripe signs theirs, and the receiver's check.

``Kefu-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is HMAC-SHA256, keyed with the
endpoint's secret (its UTF-8 bytes, ``whsec_`` prefix included), over ``"<t>." + body``: the
exact bytes of the request body. The timestamp is inside the MAC, so a captured request
cannot be replayed later than the receiver's tolerance (:data:`DEFAULT_TOLERANCE_SECONDS`),
and each retry is signed again with a fresh timestamp. A header may carry several ``v1``
values (room for a secret rotation); one matching is enough. This module is standard
library only, so docs/webhooks.md can hand receivers the same code.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Kefu-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The request is not provably from Kefu (malformed, too old, or the MAC differs)."""


def compute(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    signed = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``Kefu-Signature`` header value for ``body`` sent now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},{SCHEME}={compute(secret, t, body)}"


def parse(header: str) -> tuple[int, list[str]]:
    """``t=...,v1=...[,v1=...]`` → (timestamp, signatures); unknown schemes are ignored."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("the timestamp is not a number") from None
        elif key == SCHEME and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError(f"expected t=<unix seconds>,{SCHEME}=<hex>")
    return timestamp, signatures


def verify(secret: str, body: bytes, header: str, *,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> int:
    """Check a received request; returns its timestamp or raises :class:`SignatureError`.

    The MAC is compared in constant time; a timestamp more than ``tolerance`` seconds from
    ``now`` (either side: clocks drift) is refused even when the MAC is right.
    """
    timestamp, signatures = parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("the timestamp is outside the tolerance")
    expected = compute(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("the signature does not match")
    return timestamp
