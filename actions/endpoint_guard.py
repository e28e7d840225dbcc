"""Who may call the action server: it runs any action for any sender it is told of (an order's
address changed, a refund filed, in that customer's name), so only Rasa may reach it.

It listens on 127.0.0.1 unless ``SANIC_HOST`` says otherwise (rasa_sdk's own default is every
interface). Listening beyond this machine needs ``KEFU_ACTION_TOKEN``: the server refuses to
start without one, and with one every ``/webhook`` and ``/actions`` call must carry it in the
:data:`~ticketing.core.hosts.ACTION_TOKEN_HEADER` header (Rasa sends it: the same variable
renders into its endpoints file). ``/health`` and ``/metrics`` stay open for probes.
"""

from __future__ import annotations

from collections.abc import Mapping

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from ticketing.core.errors import ConfigurationError
from ticketing.core.hosts import is_loopback
from ticketing.core.shared_tokens import ACTION_TOKEN_HEADER, same_token

GUARDED = ("/webhook", "/actions")


def serving_host(environ: Mapping[str, str]) -> str:
    """The interface to listen on: ``SANIC_HOST``, else this machine only."""
    return environ.get("SANIC_HOST") or "127.0.0.1"


def required_token(host: str, environ: Mapping[str, str]) -> str | None:
    """``KEFU_ACTION_TOKEN``; refuses an action server reachable from elsewhere without one."""
    token = environ.get("KEFU_ACTION_TOKEN") or None
    if token is None and not is_loopback(host):
        raise ConfigurationError(
            f"SANIC_HOST={host} exposes the action server beyond this machine: set "
            "KEFU_ACTION_TOKEN (the same value for the Rasa servers that call it)")
    return token


def guard(app: Sanic, token: str | None) -> None:
    """With a token, a call to the actions without it is answered 401 and runs nothing."""
    if token is None:
        return

    @app.middleware("request")
    async def _check_token(request: Request) -> HTTPResponse | None:
        if request.path not in GUARDED or same_token(token, request.headers.get(
                ACTION_TOKEN_HEADER)):
            return None
        return response.json({"error": "the action server needs its token"}, status=401)
