"""The gateway's heart: one customer message in, routed to the assistant or to a person.

Every message is stored first (the inbound log), in its conversation's lane, then either
appended to the handed-off ticket's thread or posted to Rasa. Whatever the customer is to
read goes into the outbox and is delivered from there (``delivery.py``), so answers arrive
once and in order even when a channel hiccups. If Rasa is down or too slow, the message
becomes a ticket and the conversation is handed to a person: nothing written is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import httpx
from sqlalchemy.orm import Session, sessionmaker

from bot.gateway import texts
from bot.gateway.lanes import Lanes
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.ratelimit import RateLimiter
from bot.gateway.settings import GatewaySettings
from bot.rasa_client import AsyncRasaClient, handoff_marker, unavailable_marker
from ticketing.conversations import chat_history, inbound, outbox
from ticketing.core import audit
from ticketing.desk import handoffs, receipts, tickets
from ticketing.shop import customers
from ticketing.conversations.chat_history import Entry
from ticketing.core.clock import utcnow
from ticketing.core.errors import IllegalTransition
from ticketing.core.i18n import Text, language_of_text, normalize_language

log = logging.getLogger("kefu.gateway")


class Channel(Protocol):
    """What the gateway needs from a channel (Telegram, widget)."""

    name: str

    async def deliver(self, external_id: str, entry: Entry) -> None:
        """Show ``entry`` to the customer; raise when it did not reach them."""

    async def typing(self, external_id: str, on: bool) -> None:
        """Best effort 'the assistant is writing' indicator."""


@dataclass
class Incoming:
    """A customer message as a channel hands it over."""

    channel: str
    external_id: str
    dedupe_key: str  # the channel's own id of this message
    text: str = ""
    payload: str | None = None  # a button's payload (what Rasa gets instead of ``text``)
    language: str | None = None  # the channel's hint (Telegram language_code, widget setting)
    kind: str = "text"  # text | photo | unsupported
    attachments: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # stored with the message (client_id)

    @property
    def conversation_id(self) -> str:
        return customers.conversation_id_for(self.channel, self.external_id)


@dataclass(frozen=True)
class Outcome:
    """What happened to a message; ``reply`` is an immediate answer the channel shows itself."""

    status: str  # routed | duplicate | too_long | rate_limited | unavailable
    route: str | None = None
    inbound_id: int | None = None
    reply: str | None = None
    language: str = "zh"


def rasa_rows(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Rasa's answers as (text, payload) outbox rows; the handoff marker is not for customers."""
    rows = []
    for message in messages:
        buttons = [{"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                   for b in message.get("buttons") or [] if isinstance(b, dict)]
        text = (message.get("text") or "").strip()
        if message.get("image"):
            text = f"{text}\n{message['image']}".strip()
        if not text and buttons:
            text = " / ".join(b["title"] for b in buttons)
        if text:
            rows.append((text, {"buttons": buttons} if buttons else {}))
    return rows


class Gateway:
    def __init__(self, *, settings: GatewaySettings, session_factory: sessionmaker[Session],
                 rasa: AsyncRasaClient, limiter: RateLimiter, metrics: GatewayMetrics,
                 pii_key: bytes) -> None:
        self.settings = settings
        self.pii_key = pii_key
        self.session_factory = session_factory
        self.rasa = rasa
        self.limiter = limiter
        self.metrics = metrics
        self.lanes = Lanes()
        self.channels: dict[str, Channel] = {}
        # set by the delivery loop: deliver this conversation's outbox now
        self.deliver_now: Callable[[str], Awaitable[None]] | None = None

    def register(self, channel: Channel) -> None:
        self.channels[channel.name] = channel

    async def db(self, work: Callable[[Session], Any]) -> Any:
        """Run ``work`` in one transaction on a worker thread (SQLAlchemy is synchronous)."""
        def unit() -> Any:
            with self.session_factory.begin() as session:
                return work(session)
        return await asyncio.to_thread(unit)

    # -- one message -------------------------------------------------------------------------

    async def receive(self, msg: Incoming,
                      on_stored: Callable[[int], Awaitable[None]] | None = None) -> Outcome:
        """Route one customer message; ``on_stored`` is told its inbound id once it is safe."""
        conversation = msg.conversation_id
        async with self.lanes.hold(conversation):  # first await: keeps arrival order
            started = time.perf_counter()
            outcome = await self._receive(msg, conversation, on_stored)
            self.metrics.messages_in.labels(msg.channel, outcome.route or outcome.status).inc()
            if outcome.status == "routed":
                self.metrics.latency.labels(outcome.route or "").observe(
                    time.perf_counter() - started)
            return outcome

    async def _receive(self, msg: Incoming, conversation: str,
                       on_stored: Callable[[int], Awaitable[None]] | None) -> Outcome:
        hinted = normalize_language(language_of_text(msg.text) or msg.language)
        if len(msg.text) > self.settings.max_chars:
            return Outcome("too_long", language=hinted,
                           reply=texts.TOO_LONG.get(hinted, limit=self.settings.max_chars))
        verdict = await self.limiter.check(conversation)
        try:
            stored = await self.db(lambda s: self._store(s, msg, hinted, verdict.allowed))
        except Exception:  # the database is the system of record: without it, say so
            log.exception("cannot store a message of %s", conversation)
            self.metrics.errors.labels("database").inc()
            return Outcome("unavailable", language=hinted, reply=texts.SERVICE_DOWN.get(hinted))
        if stored is None:
            self.metrics.duplicates.labels(msg.channel).inc()
            return Outcome("duplicate", language=hinted)
        inbound_id, language, ticket_id = stored
        if on_stored is not None:
            await on_stored(inbound_id)
        if not verdict.allowed:
            self.metrics.rate_limited.labels(msg.channel).inc()
            if verdict.first_refusal:
                await self.db(lambda s: audit.record(
                    s, action="abuse.rate_limited", actor_type="customer",
                    target_type="conversation", target_id=conversation[:64],
                    details={"count": verdict.count, "window_seconds": self.settings.rate_window}))
            return Outcome("rate_limited", route="rate_limited", inbound_id=inbound_id,
                           language=language, reply=texts.RATE_LIMITED.get(language))
        return await self._route(msg, conversation, inbound_id, language, ticket_id)

    async def _route(self, msg: Incoming, conversation: str, inbound_id: int, language: str,
                     ticket_id: int | None) -> Outcome:
        if ticket_id is not None and msg.kind != "unsupported":
            routed = await self._to_ticket(msg, conversation, inbound_id, ticket_id, language)
            if routed is not None:
                return routed
        if msg.kind != "text":
            await self._enqueue(conversation, language, [(texts.UNSUPPORTED.get(language), {})],
                                inbound_id=inbound_id, route="unsupported")
            return Outcome("routed", route="unsupported", inbound_id=inbound_id, language=language)
        return await self._to_rasa(msg, conversation, inbound_id, language)

    async def replay_unhandled(self, *, older_than: float = 5.0) -> int:
        """Route messages that were stored but never routed (the gateway stopped halfway)."""
        cutoff = utcnow() - timedelta(seconds=older_than)

        def work(session: Session) -> list[tuple[Incoming, int, str, int | None]]:
            found = []
            for row in inbound.unhandled(session, received_before=cutoff):
                channel, external_id = customers.split_conversation_id(row.conversation_id)
                payload = row.payload or {}
                attachments = list(payload.get("attachments") or [])
                msg = Incoming(channel=channel, external_id=external_id,
                               dedupe_key=row.dedupe_key, text=row.text,
                               payload=payload.get("button"), attachments=attachments,
                               kind="photo" if attachments else "text")
                ticket = handoffs.handed_off_ticket(session, conversation_id=row.conversation_id)
                found.append((msg, row.id, normalize_language(language_of_text(row.text)),
                              ticket.id if ticket is not None else None))
            return found

        pending = await self.db(work)
        for msg, inbound_id, language, ticket_id in pending:
            async with self.lanes.hold(msg.conversation_id):
                await self._route(msg, msg.conversation_id, inbound_id, language, ticket_id)
        return len(pending)

    def _store(self, session: Session, msg: Incoming, hinted: str,
               allowed: bool) -> tuple[int, str, int | None] | None:
        """Identity, inbound row, language and the live handed-off ticket, in one transaction."""
        identity = customers.identity_for(session, channel=msg.channel,
                                          external_id=msg.external_id, language=hinted)
        payload: dict[str, Any] = dict(msg.extra)
        if msg.payload:
            payload["button"] = msg.payload
        if msg.attachments:
            payload["attachments"] = msg.attachments
        body = msg.text or (texts.PHOTO_BODY.get(hinted) if msg.kind == "photo" else "")
        row, created = inbound.record(session, channel=msg.channel,
                                      conversation_id=identity.conversation_id,
                                      dedupe_key=msg.dedupe_key, text=body, payload=payload)
        if not created:
            return None
        language = normalize_language(language_of_text(msg.text) or identity.language or hinted)
        if language_of_text(msg.text):
            identity.language = language
        if not allowed:
            inbound.mark_handled(session, message_id=row.id, route="rate_limited")
            return row.id, language, None
        ticket = handoffs.handed_off_ticket(session, conversation_id=identity.conversation_id)
        return row.id, language, ticket.id if ticket is not None else None

    # -- handed off: the ticket thread -------------------------------------------------------

    async def _to_ticket(self, msg: Incoming, conversation: str, inbound_id: int, ticket_id: int,
                         language: str) -> Outcome | None:
        """Append to the live ticket; None when the ticket is over (then the assistant answers)."""
        def work(session: Session) -> str:
            ticket = handoffs.active_ticket(session, conversation_id=conversation)
            if ticket is None or ticket.id != ticket_id:
                return "over"
            body = msg.text or texts.PHOTO_BODY.get(language)
            try:
                tickets.add_customer_message(session, ticket_id=ticket.id, body=body,
                                             attachments=msg.attachments or None)
            except IllegalTransition:
                return "over"
            if msg.kind == "photo":
                outbox.enqueue(session, customer_id=ticket.customer_id,
                               conversation_id=conversation, kind="notice",
                               text=texts.ATTACHED.get(language, number=ticket.number),
                               language=language, ticket_id=ticket.id)
            else:  # never silence: first message after the handoff or a quiet spell
                receipts.acknowledge(session, ticket=ticket, conversation_id=conversation,
                                     language=language, now=utcnow())
            inbound.mark_handled(session, message_id=inbound_id, route="ticket",
                                 ticket_id=ticket.id)
            return "ticket"

        if await self.db(work) == "ticket":
            await self._deliver(conversation)
            return Outcome("routed", route="ticket", inbound_id=inbound_id, language=language)
        await self.hand_back(conversation)
        return None

    async def hand_back(self, conversation: str) -> None:
        """The ticket is over: Rasa listens again (resume), then the database forgets the handoff.

        Resume first: if Rasa is unreachable the handoff stays and the next message or outbox
        delivery tries again.
        """
        await self.rasa.resume(conversation)
        await self.db(lambda s: handoffs.release(s, conversation_id=conversation))

    # -- the assistant -----------------------------------------------------------------------

    async def _to_rasa(self, msg: Incoming, conversation: str, inbound_id: int,
                       language: str) -> Outcome:
        channel = self.channels.get(msg.channel)
        if channel is not None:
            await _quietly(channel.typing(msg.external_id, True))
        started = time.perf_counter()
        try:
            answers = await asyncio.wait_for(
                self.rasa.send(conversation, msg.payload or msg.text),
                timeout=self.settings.rasa_timeout)
        except (httpx.HTTPError, asyncio.TimeoutError, ValueError) as exc:
            kind = "rasa_timeout" if isinstance(exc, asyncio.TimeoutError) else "rasa_unavailable"
            log.warning("assistant failed for %s (%s): handing off", conversation, kind)
            self.metrics.errors.labels(kind).inc()
            return await self._assistant_failed(msg, conversation, inbound_id, language)
        finally:
            if channel is not None:
                await _quietly(channel.typing(msg.external_id, False))
        self.metrics.rasa_latency.observe(time.perf_counter() - started)
        broken = unavailable_marker(answers)
        if broken is not None:
            fallback = await self._actions_without_backend(msg, conversation, inbound_id,
                                                           language, broken)
            if fallback is not None:
                return fallback
        marker = handoff_marker(answers)
        ticket_id = marker.get("ticket_id") if marker else None
        if marker:
            self.metrics.handoffs.labels(str(marker.get("reason") or "assistant")).inc()
        await self._enqueue(conversation, language, rasa_rows(answers), inbound_id=inbound_id,
                            route="rasa", ticket_id=ticket_id if isinstance(ticket_id, int) else None)
        return Outcome("routed", route="rasa", inbound_id=inbound_id, language=language)

    async def _actions_without_backend(self, msg: Incoming, conversation: str, inbound_id: int,
                                       language: str, marker: dict[str, Any]) -> Outcome | None:
        """An action failed and the action server could not reach the database to open a ticket.

        The gateway just stored this message in that database, so it can usually do what the
        action server could not: the Rasa-down path (a ticket, a handoff, an apology with the
        ticket number) instead of "please try again later". None when that fails too: then
        the assistant's own apology is delivered.
        """
        log.warning("actions could not reach the database for %s (%s failed): handing off",
                    conversation, marker.get("failed_action"))
        self.metrics.errors.labels("actions_backend_unavailable").inc()
        try:
            return await self._assistant_failed(msg, conversation, inbound_id, language)
        except Exception:
            log.exception("no fallback ticket either for %s", conversation)
            return None

    async def _assistant_failed(self, msg: Incoming, conversation: str, inbound_id: int,
                                language: str) -> Outcome:
        """Apology, a ticket with the customer's words, and a person takes the conversation."""
        def work(session: Session) -> None:
            transcript = chat_history.transcript(session, conversation_id=conversation)
            ticket = handoffs.open_for_conversation(
                session, conversation_id=conversation, text=msg.text or "—", language=language,
                transcript=transcript)
            outbox.enqueue(session, customer_id=ticket.customer_id, conversation_id=conversation,
                           kind="bot", text=texts.ASSISTANT_DOWN.get(language, number=ticket.number),
                           language=language, ticket_id=ticket.id)
            inbound.mark_handled(session, message_id=inbound_id, route="fallback_ticket",
                                 ticket_id=ticket.id)

        await self.db(work)
        self.metrics.handoffs.labels("assistant_unavailable").inc()
        await self._deliver(conversation)
        return Outcome("routed", route="fallback_ticket", inbound_id=inbound_id, language=language)

    # -- answers out -------------------------------------------------------------------------

    async def _enqueue(self, conversation: str, language: str,
                       rows: list[tuple[str, dict[str, Any]]], *, inbound_id: int, route: str,
                       ticket_id: int | None = None) -> None:
        def work(session: Session) -> None:
            identity = customers.identity_by_conversation(session, conversation_id=conversation)
            customer_id = identity.customer_id if identity is not None else None
            for text, payload in rows:
                outbox.enqueue(session, customer_id=customer_id, conversation_id=conversation,
                               kind="bot", text=text, language=language, payload=payload,
                               ticket_id=ticket_id)
            inbound.mark_handled(session, message_id=inbound_id, route=route, ticket_id=ticket_id)

        await self.db(work)
        await self._deliver(conversation)

    async def _deliver(self, conversation: str) -> None:
        if self.deliver_now is not None:
            await self.deliver_now(conversation)

    async def say(self, channel: str, external_id: str, text: Text | str, *,
                  language: str = "zh", kind: str = "notice",
                  payload: dict[str, Any] | None = None) -> None:
        """Queue a gateway message (verification results...) in order with everything else."""
        conversation = customers.conversation_id_for(channel, external_id)
        body = text.get(language) if isinstance(text, Text) else text

        def work(session: Session) -> None:
            identity = customers.identity_for(session, channel=channel, external_id=external_id)
            outbox.enqueue(session, customer_id=identity.customer_id, conversation_id=conversation,
                           kind=kind, text=body, language=language, payload=payload)

        await self.db(work)
        await self._deliver(conversation)


async def _quietly(call: Awaitable[None]) -> None:
    try:
        await call
    except Exception as exc:  # an indicator is never worth failing a message for
        log.debug("typing indicator failed: %s", exc)
