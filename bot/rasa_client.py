"""Talking to the Rasa server over HTTP: messages in, answers out, and the desk's hand-back.

The REST channel answers a message with the bot's messages (text, buttons, and ``custom``
payloads such as the handoff marker, ``ticketing.desk.handoffs.HANDOFF_MARKER_KEY``). The
HTTP API (``--enable-api``) lets the desk resume a paused (handed-off) conversation and
trigger external intents (CSAT, follow-up) whose answers come back in the response with
``output_channel=collector``.

Both clients take one server URL or several (``KEFU_RASA_URLS``): with several, each
conversation sticks to one server and moves only while that server is down
(:mod:`bot.rasa_pool`). ``token`` is Rasa's ``--auth-token``, sent as ``?token=`` on every call
(Rasa ignores it when it runs without one); it never appears in the errors these clients raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from bot.aiohttp_transport import AiohttpTransport
from bot.nlu.speaker import LANGUAGE, METADATA_KEY, VERIFIED
from bot.rasa_pool import RasaPool, Verdict, judge_error, judge_status
from ticketing.desk.handoffs import BACKEND_UNAVAILABLE, HANDOFF_MARKER_KEY


def _markers(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The markers (``ticketing.desk.handoffs.HANDOFF_MARKER_KEY``) in a bot response."""
    found = []
    for message in messages:
        custom = message.get("custom") or {}
        marker = custom.get(HANDOFF_MARKER_KEY) if isinstance(custom, dict) else None
        if isinstance(marker, dict):
            found.append(marker)
    return found


def handoff_marker(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The handoff marker in a bot response, if the bot handed the conversation off."""
    return next((m for m in _markers(messages) if m.get("handoff")), None)


def unavailable_marker(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The marker of an action that failed without reaching the database to open a ticket."""
    return next((m for m in _markers(messages) if m.get("error") == BACKEND_UNAVAILABLE), None)


CONNECT_TIMEOUT = 3.0  # a server that cannot take a connection this fast is down: next one


def _path(sender: str, tail: str) -> str:
    return f"/conversations/{quote(sender, safe=':@')}/{tail}"


def _setup(base_url: str | Sequence[str], timeout: float, token: str | None,
           pool: RasaPool | None) -> tuple[RasaPool, dict[str, Any]]:
    """The pool and the keyword arguments every per-server httpx client gets."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    options: dict[str, Any] = {
        "timeout": httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
        "params": {"token": token} if token else None,
        # a fresh connection per call: a kept-alive one to a server killed since breaks only
        # after the request went out, which cannot be told from a turn cut short and so is
        # never moved to the next server; a new connection to a dead server is refused at
        # once and moves cleanly (a local TCP connect costs well under a millisecond)
        "limits": httpx.Limits(max_keepalive_connections=0),
    }
    return pool or RasaPool(urls), options


def _checked(response: httpx.Response) -> httpx.Response:
    """``raise_for_status`` without the token: httpx puts the full URL in its message."""
    if response.is_success:
        return response
    request = response.request
    raise httpx.HTTPStatusError(
        f"Rasa answered {response.status_code} to {request.method} {request.url.path}",
        request=request, response=response)


def _judged(pool: RasaPool, server: str, error: httpx.TransportError) -> bool:
    """Record a failed call; True when the conversation's next server may take it."""
    verdict = judge_error(error)
    pool.record(server, verdict, type(error).__name__)
    return verdict is Verdict.DOWN_UNSENT


class RasaClient:
    """A small synchronous client; the gateway uses :class:`AsyncRasaClient`."""

    def __init__(self, base_url: str | Sequence[str], *, timeout: float = 30.0,
                 token: str | None = None, pool: RasaPool | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.pool, options = _setup(base_url, timeout, token, pool)
        self._http = {server: httpx.Client(base_url=server, transport=transport, **options)
                      for server in self.pool.servers}

    def close(self) -> None:
        for client in self._http.values():
            client.close()

    def __enter__(self) -> RasaClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, sender: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The call on ``sender``'s server, or its next ones while they cannot be reached."""
        unreachable: httpx.TransportError | None = None
        for server in self.pool.candidates(sender):
            try:
                response = self._http[server].request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if not _judged(self.pool, server, exc):
                    raise
                unreachable = exc
                continue
            self.pool.record(server, judge_status(response.status_code),
                             f"HTTP {response.status_code}")
            return _checked(response)
        assert unreachable is not None  # a pool is never empty
        raise unreachable

    def send(self, sender: str, message: str, *, language: str | None = None,
             verified: bool | None = None) -> list[dict[str, Any]]:
        """A customer's message through the REST channel; returns the bot's messages.
        ``language`` (the customer's so far) and ``verified`` are what the caller knows of the
        speaker (:func:`speaker_metadata`)."""
        return self._request(sender, "POST", "/webhooks/rest/webhook",
                             json=_message(sender, message, language, verified)).json()

    def resume(self, sender: str) -> None:
        """Hand a paused conversation back to the bot."""
        self._request(sender, "POST", _path(sender, "tracker/events"), json={"event": "resume"})

    def trigger(self, sender: str, intent: str,
                entities: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run an external intent (EXTERNAL_csat_request...) and return what the bot said."""
        response = self._request(sender, "POST", _path(sender, "trigger_intent"),
                                 params={"output_channel": "collector"},
                                 json={"name": intent, "entities": entities or {}})
        return response.json().get("messages", [])

    def tracker(self, sender: str) -> dict[str, Any]:
        return self._request(sender, "GET", _path(sender, "tracker")).json()


class AsyncRasaClient:
    """The same calls for asyncio code (the gateway)."""

    def __init__(self, base_url: str | Sequence[str], *, timeout: float = 30.0,
                 token: str | None = None, pool: RasaPool | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.pool, options = _setup(base_url, timeout, token, pool)
        # the wire at a third of httpx's own CPU; the clients build the requests (base URL,
        # token, timeouts) and the transport sends them: a call needs none of what a client's
        # send adds (auth flows, redirects, cookies, event hooks), about a third of its CPU
        self._transport = transport or AiohttpTransport()
        self._http = {server: httpx.AsyncClient(base_url=server, transport=self._transport,
                                                **options)
                      for server in self.pool.servers}

    async def aclose(self) -> None:
        for client in self._http.values():
            await client.aclose()

    async def _request(self, sender: str, method: str, path: str,
                       **kwargs: Any) -> httpx.Response:
        """As :meth:`RasaClient._request`; a cancelled (too slow) call says nothing of health."""
        unreachable: httpx.TransportError | None = None
        for server in self.pool.candidates(sender):
            try:
                request = self._http[server].build_request(method, path, **kwargs)
                response = await self._transport.handle_async_request(request)
                response.request = request
                await response.aread()
            except httpx.TransportError as exc:
                if not _judged(self.pool, server, exc):
                    raise
                unreachable = exc
                continue
            self.pool.record(server, judge_status(response.status_code),
                             f"HTTP {response.status_code}")
            return _checked(response)
        assert unreachable is not None  # a pool is never empty
        raise unreachable

    async def send(self, sender: str, message: str, *, language: str | None = None,
                   verified: bool | None = None) -> list[dict[str, Any]]:
        response = await self._request(sender, "POST", "/webhooks/rest/webhook",
                                       json=_message(sender, message, language, verified))
        return response.json()

    async def resume(self, sender: str) -> None:
        await self._request(sender, "POST", _path(sender, "tracker/events"),
                            json={"event": "resume"})

    async def trigger(self, sender: str, intent: str,
                      entities: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        response = await self._request(sender, "POST", _path(sender, "trigger_intent"),
                                       params={"output_channel": "collector"},
                                       json={"name": intent, "entities": entities or {}})
        return response.json().get("messages", [])

    async def tracker(self, sender: str) -> dict[str, Any]:
        response = await self._request(sender, "GET", _path(sender, "tracker"))
        return response.json()


def _message(sender: str, message: str, language: str | None,
             verified: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"sender": sender, "message": message}
    metadata = speaker_metadata(language, verified)
    if metadata:
        body["metadata"] = metadata
    return body


def speaker_metadata(language: str | None, verified: bool | None) -> dict[str, Any]:
    """What the gateway knows of the speaker, as the message metadata Rasa's ``TurnFacts``
    component reads into the ``language`` and ``verified`` slots (``bot/nlu/speaker.py``):
    instead of an action call on every turn to look them up again."""
    facts: dict[str, Any] = {}
    if language is not None:
        facts[LANGUAGE] = language
    if verified is not None:
        facts[VERIFIED] = verified
    return {METADATA_KEY: facts} if facts else {}
