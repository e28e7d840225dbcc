"""The gateway's heart: one customer message in, routed to the assistant or to a person.

Every message is stored first (the inbound log), in its conversation's lane, then either
appended to the handed-off ticket's thread or posted to Rasa. Whatever the customer is to
read goes into the outbox and is delivered from there (``delivery.py``), so answers arrive
once and in order even when a channel hiccups. If Rasa is down or too slow, the message
becomes a ticket and the conversation is handed to a person: nothing written is lost.

What reaches Rasa is bounded and never trusted: the text is cleaned of what cannot be stored
(``text_hygiene.py``), typed text can never be read as an intent and only the first
``KEFU_NLU_MAX_CHARS`` characters are parsed, a button payload counts only if the bot offered
it (``payloads.py``), and turns wait for a slot with verified customers first
(``admission.py``); that half of a turn is ``assistant_turn.py``. An assistant that answers a
message with nothing at all (an action server that died mid-turn) is treated like one that is
down: apology and ticket, never silence. A message is answered by the turn whose transaction
marks it handled (``answered.py``), once, whatever ran twice. A turn that breaks after its
message was stored (the database dropped every connection between storing and answering) ends
with the status ``deferred``: the channel still closes the turn (the widget's ``handled``
frame) and ``replay.py`` answers the message a few seconds later, once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.gateway import payloads, texts
from bot.gateway.admission import Admission
from bot.gateway.answered import REPLY_TO, AnsweredElsewhere, claim
from bot.gateway.assistant_turn import AssistantTurn
from bot.gateway.lanes import Lanes
from bot.gateway.messages import Channel, Incoming, Outcome, cleaned
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.ratelimit import RateLimiter
from bot.gateway.settings import GatewaySettings
from bot.rasa_client import AsyncRasaClient
from ticketing.conversations import answers, inbound, outbox
from ticketing.core import audit
from ticketing.desk import handoffs, receipts, tickets
from ticketing.shop import customers
from ticketing.core.clock import utcnow
from ticketing.core.errors import IllegalTransition
from ticketing.core.i18n import Text, language_of_text, normalize_language
from ticketing.core.models import OutboxMessage

log = logging.getLogger("kefu.gateway")


class Gateway(AssistantTurn):
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
        self.admission = Admission(capacity=settings.rasa_concurrency,
                                   anonymous=settings.rasa_anonymous_concurrency)
        self.channels: dict[str, Channel] = {}
        # set by the delivery loop: deliver this conversation's outbox now (given rows: born
        # leased here), whether this process can reach the conversation's customer, and wait
        # until the deliveries recorded beside their turns are in the database
        self.deliver_now: Callable[..., Awaitable[None]] | None = None
        self.reachable_here: Callable[[str], bool] = lambda conversation: False
        self.settle_deliveries: Callable[[float | None], Awaitable[None]] = _nothing_to_settle

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
        msg = cleaned(msg)
        # the hint reads no more than a message may hold: a longer one is refused just below
        hinted = normalize_language(language_of_text(msg.text[:self.settings.max_chars])
                                    or msg.language)
        if len(msg.text) > self.settings.max_chars:
            return Outcome("too_long", language=hinted,
                           reply=texts.TOO_LONG.get(hinted, limit=self.settings.max_chars))
        if not self._readable(msg):
            self.metrics.errors.labels("unreadable_message").inc()
            return Outcome("invalid", language=hinted, reply=texts.UNREADABLE.get(hinted))
        verdict = await self.limiter.check(conversation)
        try:
            try:
                stored = await self.db(lambda s: self._store(s, msg, hinted, verdict.allowed))
            except IntegrityError:  # stored before (a redelivery): look, then say so
                stored = await self.db(lambda s: self._store(s, msg, hinted, verdict.allowed,
                                                             assume_new=False))
        except (DataError, UnicodeError, ValueError) as exc:  # this message, not the database
            log.warning("a message of %s cannot be stored (%s)", conversation,
                        type(exc).__name__)  # not the text: it may hold personal data
            self.metrics.errors.labels("unreadable_message").inc()
            return Outcome("invalid", language=hinted, reply=texts.UNREADABLE.get(hinted))
        except Exception:  # the database is the system of record: without it, say so
            log.exception("cannot store a message of %s", conversation)
            self.metrics.errors.labels("database").inc()
            return Outcome("unavailable", language=hinted, reply=texts.SERVICE_DOWN.get(hinted))
        if stored is None:
            self.metrics.duplicates.labels(msg.channel).inc()
            return Outcome("duplicate", language=hinted)
        inbound_id, language, ticket_id = stored.inbound_id, stored.language, stored.ticket_id
        if msg.payload and not stored.payload_offered:
            log.info("a payload the bot did not offer in %s goes to Rasa as text", conversation)
            msg = dataclasses.replace(msg, payload=None)
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
        try:
            return await self.route(msg, conversation, inbound_id, language, ticket_id,
                                    verified=stored.verified)
        except Exception:  # the database went away mid-turn: the stored message is not lost
            log.exception("the turn of %s was cut short after its message was stored; the "
                          "replay answers it", conversation)
            self.metrics.errors.labels("turn_interrupted").inc()
            return Outcome("deferred", inbound_id=inbound_id, language=language)

    def _readable(self, msg: Incoming) -> bool:
        """A payload of a button's size and shape, and some text (or a photo) to go with it."""
        if msg.payload is not None and not payloads.acceptable(
                msg.payload, max_chars=self.settings.max_payload_chars):
            return False
        return msg.kind != "text" or bool(msg.text.strip() or msg.payload)

    async def route(self, msg: Incoming, conversation: str, inbound_id: int, language: str,
                    ticket_id: int | None, *, verified: bool = False) -> Outcome:
        """Answer a stored message (the assistant, the ticket thread); said once, whatever
        ran twice: see :class:`AnsweredElsewhere`."""
        try:
            return await self._route(msg, conversation, inbound_id, language, ticket_id,
                                     verified=verified)
        except AnsweredElsewhere:
            log.warning("message %s of %s was answered by another turn first; this one says "
                        "nothing", inbound_id, conversation)
            self.metrics.errors.labels("answered_elsewhere").inc()
            return Outcome("routed", route="answered_elsewhere", inbound_id=inbound_id,
                           language=language)

    async def _route(self, msg: Incoming, conversation: str, inbound_id: int, language: str,
                     ticket_id: int | None, *, verified: bool = False) -> Outcome:
        if ticket_id is not None and msg.kind != "unsupported":
            routed = await self._to_ticket(msg, conversation, inbound_id, ticket_id, language)
            if routed is not None:
                return routed
        if msg.kind != "text":
            await self._enqueue(conversation, language, [(texts.UNSUPPORTED.get(language), {})],
                                inbound_id=inbound_id, route="unsupported")
            return Outcome("routed", route="unsupported", inbound_id=inbound_id, language=language)
        return await self._to_rasa(msg, conversation, inbound_id, language, verified=verified)

    def _store(self, session: Session, msg: Incoming, hinted: str, allowed: bool, *,
               assume_new: bool = True) -> _Stored | None:
        """Identity, inbound row, language and the live handed-off ticket, in one transaction.

        Only a payload the bot offered is stored as one (so a replay after a restart sends it
        the same way); any other is dropped and the message is the customer's words. The row
        is inserted without looking for a duplicate first (``assume_new``); a redelivered
        message raises ``IntegrityError`` and the caller looks again.
        """
        identity = customers.speaker(session, channel=msg.channel,
                                     external_id=msg.external_id, language=hinted)
        payload: dict[str, Any] = dict(msg.extra)
        offered = bool(msg.payload) and payloads.is_offered(
            session, conversation_id=identity.conversation_id, payload=str(msg.payload))
        if offered:
            payload["button"] = msg.payload
        if msg.attachments:
            payload["attachments"] = msg.attachments
        body = msg.text or (texts.PHOTO_BODY.get(hinted) if msg.kind == "photo" else "")
        row, created = inbound.record(session, channel=msg.channel,
                                      conversation_id=identity.conversation_id,
                                      dedupe_key=msg.dedupe_key, text=body, payload=payload,
                                      assume_new=assume_new)
        if not created:
            return None
        language = normalize_language(language_of_text(msg.text) or identity.language or hinted)
        if language_of_text(msg.text) and identity.language != language:
            customers.set_language(session, channel=msg.channel, external_id=msg.external_id,
                                   language=language)
        verified = identity.verified
        if not allowed:
            inbound.mark_handled(session, message_id=row.id, route="rate_limited")
            return _Stored(row.id, language, None, verified, offered)
        # the identity is the handoff's record (handoffs.handed_off_ticket reads it again)
        return _Stored(row.id, language, identity.handed_off_ticket_id, verified, offered)

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
            claim(session, inbound_id, "ticket", ticket.id)
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

    # -- answers out -------------------------------------------------------------------------

    async def _enqueue(self, conversation: str, language: str,
                       rows: list[tuple[str, dict[str, Any]]], *, inbound_id: int, route: str,
                       ticket_id: int | None = None) -> None:
        lease = self.settings.lease_seconds if self.reachable_here(conversation) else None

        def work(session: Session) -> list[OutboxMessage] | None:
            """The rows, born leased when this process delivers them and nothing is ahead."""
            queued = answers.queue(session, conversation_id=conversation, language=language,
                                   answers=[(text, {**payload, REPLY_TO: inbound_id})
                                            for text, payload in rows],
                                   ticket_id=ticket_id, lease_seconds=lease)
            claim(session, inbound_id, route, ticket_id)
            return queued

        await self._deliver(conversation, await self.db(work))

    async def _deliver(self, conversation: str,
                       leased: list[OutboxMessage] | None = None) -> None:
        """Deliver what was just queued (``leased``: rows born leased to this process); a
        failure here is the outbox's to retry (its poller), never a reason to fail the turn
        that queued it."""
        if self.deliver_now is None:
            return
        try:
            await self.deliver_now(conversation, leased)
        except Exception as exc:
            log.warning("delivery to %s failed (%s); the outbox retries it", conversation,
                        type(exc).__name__)

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


async def _nothing_to_settle(timeout: float | None = None) -> None:
    """No delivery loop: no records pending."""


@dataclass(frozen=True)
class _Stored:
    """What storing a message found out (see :meth:`Gateway._store`)."""

    inbound_id: int
    language: str
    ticket_id: int | None  # the live handed-off ticket
    verified: bool  # a shop account stands behind this conversation (admission priority)
    payload_offered: bool  # the message's payload was one of the bot's buttons
