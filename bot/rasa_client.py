"""Talking to the Rasa server over HTTP: messages in, answers out, and the desk's hand-back.

The REST channel answers a message with the bot's messages (text, buttons, and ``custom``
payloads such as the handoff marker, ``ticketing.desk.handoffs.HANDOFF_MARKER_KEY``). The
HTTP API (``--enable-api``) lets the desk resume a paused (handed-off) conversation and
trigger external intents (CSAT, follow-up) whose answers come back in the response with
``output_channel=collector``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

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


class RasaClient:
    """A small synchronous client; the gateway uses :class:`AsyncRasaClient`."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, token: str | None = None) -> None:
        params = {"token": token} if token else None
        self._http = httpx.Client(base_url=base_url, timeout=timeout, params=params)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RasaClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, sender: str, message: str) -> list[dict[str, Any]]:
        """A customer's message through the REST channel; returns the bot's messages."""
        response = self._http.post("/webhooks/rest/webhook",
                                   json={"sender": sender, "message": message})
        response.raise_for_status()
        return response.json()

    def resume(self, sender: str) -> None:
        """Hand a paused conversation back to the bot."""
        response = self._http.post(f"/conversations/{quote(sender, safe=':@')}/tracker/events",
                                   json={"event": "resume"})
        response.raise_for_status()

    def trigger(self, sender: str, intent: str,
                entities: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run an external intent (EXTERNAL_csat_request...) and return what the bot said."""
        response = self._http.post(
            f"/conversations/{quote(sender, safe=':@')}/trigger_intent",
            params={"output_channel": "collector"},
            json={"name": intent, "entities": entities or {}},
        )
        response.raise_for_status()
        return response.json().get("messages", [])

    def tracker(self, sender: str) -> dict[str, Any]:
        response = self._http.get(f"/conversations/{quote(sender, safe=':@')}/tracker")
        response.raise_for_status()
        return response.json()


class AsyncRasaClient:
    """The same calls for asyncio code (the gateway)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, token: str | None = None) -> None:
        params = {"token": token} if token else None
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, params=params)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, sender: str, message: str) -> list[dict[str, Any]]:
        response = await self._http.post("/webhooks/rest/webhook",
                                          json={"sender": sender, "message": message})
        response.raise_for_status()
        return response.json()

    async def resume(self, sender: str) -> None:
        response = await self._http.post(
            f"/conversations/{quote(sender, safe=':@')}/tracker/events", json={"event": "resume"})
        response.raise_for_status()

    async def trigger(self, sender: str, intent: str,
                      entities: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        response = await self._http.post(
            f"/conversations/{quote(sender, safe=':@')}/trigger_intent",
            params={"output_channel": "collector"},
            json={"name": intent, "entities": entities or {}},
        )
        response.raise_for_status()
        return response.json().get("messages", [])
