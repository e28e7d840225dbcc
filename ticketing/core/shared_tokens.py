"""Tokens one party shows another to be let in: a desk session's CSRF token, the token Rasa
shows the action server, Telegram's webhook secret, Rasa's own token on its REST webhook.

Compared in constant time, as bytes (``hmac.compare_digest`` refuses non-ASCII text), and a
missing token never matches.
"""

from __future__ import annotations

import hmac

# The header by which a Rasa server shows the action server it holds KEFU_ACTION_TOKEN: Rasa
# sends it (bot/rasa_config.py, the endpoints' headers), the action server checks it
# (actions/endpoint_guard.py). A header, not Rasa's ``?token=`` query: URLs end up in logs.
ACTION_TOKEN_HEADER = "X-Kefu-Action-Token"


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
