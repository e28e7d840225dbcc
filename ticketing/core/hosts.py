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


# The header by which a Rasa server shows the action server it holds KEFU_ACTION_TOKEN: Rasa
# sends it (bot/rasa_config.py, the endpoints' headers), the action server checks it
# (actions/endpoint_guard.py). A header, not Rasa's ``?token=`` query: URLs end up in logs.
ACTION_TOKEN_HEADER = "X-Kefu-Action-Token"
