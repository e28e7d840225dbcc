"""Which hosts only this machine can reach: what may go without a token or without TLS."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``, ``[::1]``)."""
    host = (host or "").strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
