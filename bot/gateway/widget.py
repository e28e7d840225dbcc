"""The web widget's channel: one WebSocket per open page, speaking docs/gateway.md's protocol.

Who the visitor is comes from the shop: a valid signed token makes the conversation
``widget:c-<customer_id>`` (linked and verified, the same on every device); without one the
visitor is anonymous under the random id their browser keeps. A page that reloads or
reconnects says ``hello`` again and gets the history, then whatever was still owed.

Only pages of the shop may open the socket: a handshake from a foreign ``Origin`` is refused
with HTTP 403 before the upgrade (``origins.py``, ``KEFU_WIDGET_ORIGINS``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy.orm import Session

from bot import widget_token
from bot.gateway import origins, texts, verification
from bot.gateway.core import Gateway
from bot.gateway.messages import Incoming, Outcome
from ticketing.conversations import chat_history, outbox
from ticketing.core import audit
from ticketing.shop import customers
from ticketing.conversations.chat_history import Entry
from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import Customer

log = logging.getLogger("kefu.gateway.widget")

VISITOR = re.compile(r"^v-[A-Za-z0-9-]{8,64}$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,60}$")
HELLO_TIMEOUT = 15.0
BAD_FRAME = Text("无法识别的消息。", "That message could not be read.")


class NotConnected(Exception):
    """No page of this visitor is open: the outbox keeps the message and retries."""


class WidgetChannel:
    name = "widget"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Channel protocol --------------------------------------------------------------------

    async def deliver(self, external_id: str, entry: Entry) -> None:
        sent = 0
        for ws in list(self.sockets.get(external_id, ())):
            try:
                await ws.send_json({"type": "message", **entry.as_dict()})
                sent += 1
            except (ConnectionError, RuntimeError) as exc:
                log.debug("widget socket gone: %s", exc)
        if not sent:
            raise NotConnected(external_id)

    async def typing(self, external_id: str, on: bool) -> None:
        for ws in list(self.sockets.get(external_id, ())):
            try:
                await ws.send_json({"type": "typing", "on": on})
            except (ConnectionError, RuntimeError):
                pass

    # -- the socket --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if not origins.allowed(origin, host=request.host,
                               configured=self.gateway.settings.widget_origins):
            log.warning("widget socket refused for origin %r (KEFU_WIDGET_ORIGINS)", origin)
            raise web.HTTPForbidden(text="origin not allowed")
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=64 * 1024)
        await ws.prepare(request)
        try:
            hello = await asyncio.wait_for(ws.receive(), timeout=HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            await ws.close()
            return ws
        frame = _frame(hello)
        if frame is None or frame.get("type") != "hello":
            await ws.send_json({"type": "error", "code": "bad_frame", "text": BAD_FRAME.get("en")})
            await ws.close()
            return ws
        session = await self._open(frame, request)
        if session is None:
            await ws.send_json({"type": "error", "code": "bad_frame", "text": BAD_FRAME.get("en")})
            await ws.close()
            return ws
        external_id, language, welcome = session
        self.sockets.setdefault(external_id, set()).add(ws)
        self.gateway.metrics.connections.inc()
        try:
            await ws.send_json(welcome)
            # what was owed goes out beside the reading: a slow flush never holds up a frame
            self._spawn(self._flush(external_id))
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                frame = _frame(message)
                if frame is None:
                    await ws.send_json({"type": "error", "code": "bad_frame",
                                        "text": BAD_FRAME.get(language)})
                elif frame.get("type") == "message":
                    self._spawn(self._message(ws, external_id, language, frame))
        finally:
            self.sockets.get(external_id, set()).discard(ws)
            if not self.sockets.get(external_id):
                self.sockets.pop(external_id, None)
            self.gateway.metrics.connections.dec()
        return ws

    async def _open(self, frame: dict[str, Any],
                    request: web.Request) -> tuple[str, str, dict[str, Any]] | None:
        """Who this is, and the ``welcome`` frame with their history."""
        visitor = frame.get("visitor")
        token = frame.get("token") or None
        language = normalize_language(frame.get("language") if isinstance(frame.get("language"), str)
                                      else None)
        secret = self.gateway.settings.widget_secret
        customer_id = widget_token.verify(token, secret=secret) if isinstance(token, str) else None
        if customer_id is None and not (isinstance(visitor, str) and VISITOR.match(visitor)):
            return None
        external_id = f"c-{customer_id}" if customer_id is not None else str(visitor)
        conversation = customers.conversation_id_for("widget", external_id)
        ip = request.remote

        def work(session: Session) -> dict[str, Any] | None:
            verified = False
            if customer_id is not None and session.get(Customer, customer_id) is not None:
                customers.identity_for(session, channel="widget", external_id=external_id,
                                       language=language)
                identity = customers.link_identity(
                    session, channel="widget", external_id=external_id, customer_id=customer_id,
                    method="widget_token")
                verified = identity.verified_at is not None
            else:
                if token:
                    audit.record(session, action="widget.token_refused", actor_type="customer",
                                 target_type="conversation", target_id=conversation[:64], ip=ip,
                                 details={"reason": "invalid, expired or forged token"})
                identity = customers.identity_for(session, channel="widget",
                                                  external_id=external_id, language=language)
            if identity.language is None:
                identity.language = language
            entries = [e.as_dict() for e in chat_history.history(session, conversation_id=conversation)
                       if e.direction == "in" or e.delivered]
            outbox.retry_now(session, conversation_id=conversation)  # owed while it was closed
            return {"type": "welcome", "conversation": conversation, "verified": verified,
                    "language": identity.language or language, "history": entries}

        welcome = await self.gateway.db(work)
        if welcome and welcome["verified"] and customer_id is not None:
            # a guest page that signed in brings its tickets along (issue 13)
            guest = visitor if isinstance(visitor, str) and VISITOR.match(visitor) else None
            await verification.signed_in(self.gateway, customer_id=customer_id, visitor=guest,
                                         language=welcome["language"])
        return (external_id, language, welcome) if welcome else None

    async def _flush(self, external_id: str) -> None:
        if self.gateway.deliver_now is not None:
            await self.gateway.deliver_now(customers.conversation_id_for("widget", external_id))

    async def _message(self, ws: web.WebSocketResponse, external_id: str, language: str,
                       frame: dict[str, Any]) -> None:
        client_id, text, payload = frame.get("client_id"), frame.get("text"), frame.get("payload")
        if not (isinstance(client_id, str) and CLIENT_ID.match(client_id)) \
                or not isinstance(text, str) or not (payload is None or isinstance(payload, str)):
            await _send(ws, {"type": "error", "code": "bad_frame", "text": BAD_FRAME.get(language)})
            return
        text = text.strip()
        if not text and not payload:
            return

        async def stored(inbound_id: int) -> None:
            await _send(ws, {"type": "received", "client_id": client_id, "id": f"in-{inbound_id}"})

        try:
            outcome: Outcome = await self.gateway.receive(Incoming(
                channel="widget", external_id=external_id,
                dedupe_key=f"{external_id}:{client_id}", text=text, payload=payload or None,
                language=language, extra={"client_id": client_id}), on_stored=stored)
        except Exception:  # a fault of ours: the page keeps the message and sends it again
            log.exception("a widget message of %s broke its turn", external_id)
            outcome = Outcome("unavailable", language=language,
                              reply=texts.SERVICE_DOWN.get(language))
        if outcome.status == "duplicate":
            await _send(ws, {"type": "received", "client_id": client_id, "id": None})
        elif outcome.reply:
            await _send(ws, {"type": "error", "code": outcome.status, "text": outcome.reply,
                             "client_id": client_id})
        # the answers to this message (if any) went out before this: the turn is over
        await _send(ws, {"type": "handled", "client_id": client_id,
                         "route": outcome.route or outcome.status})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the poller retries later
            log.warning("widget work failed: %r", task.exception())


def _frame(message: Any) -> dict[str, Any] | None:
    if getattr(message, "type", None) != WSMsgType.TEXT:
        return None
    try:
        data = json.loads(message.data)
    except (TypeError, ValueError, RecursionError):  # RecursionError: "[[[[…" 60,000 deep
        return None
    return data if isinstance(data, dict) else None


async def _send(ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
    try:
        await ws.send_json(data)
    except (ConnectionError, RuntimeError):
        pass
