"""The assistant's half of a turn: the message to Rasa, and what happens when Rasa fails.

Kept apart from ``core.py`` (storing a message and routing it) as a mixin of
:class:`bot.gateway.core.Gateway`: the text sent to Rasa is bounded and never read as an
intent (``payloads.py``), turns wait for a slot with verified customers first
(``admission.py``), and an assistant that is down, too slow, or answers a customer's message
with nothing at all (an action server that died mid-turn) ends in an apology and a ticket with
the customer's words, never silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.orm import Session

from bot.gateway import payloads, texts
from bot.gateway.admission import Admission, Overloaded
from bot.gateway.answered import REPLY_TO, claim
from bot.gateway.messages import Channel, Incoming, Outcome, rasa_rows
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.settings import GatewaySettings
from bot.rasa_client import AsyncRasaClient, handoff_marker, unavailable_marker
from ticketing.conversations import chat_history, outbox
from ticketing.core.i18n import language_of_text
from ticketing.desk import handoffs

log = logging.getLogger("kefu.gateway")


class AssistantTurn:
    """The assistant's half of :class:`~bot.gateway.core.Gateway` (which provides these)."""

    settings: GatewaySettings
    rasa: AsyncRasaClient
    admission: Admission
    metrics: GatewayMetrics
    channels: dict[str, Channel]

    if TYPE_CHECKING:
        async def db(self, work: Callable[[Session], Any]) -> Any: ...

        async def _to_ticket(self, msg: Incoming, conversation: str, inbound_id: int,
                             ticket_id: int, language: str) -> Outcome | None: ...

        async def _enqueue(self, conversation: str, language: str,
                           rows: list[tuple[str, dict[str, Any]]], *, inbound_id: int,
                           route: str, ticket_id: int | None = None) -> None: ...

        async def _deliver(self, conversation: str, leased: Any = None) -> None: ...

    async def _to_rasa(self, msg: Incoming, conversation: str, inbound_id: int,
                       language: str, *, verified: bool = False) -> Outcome:
        channel = self.channels.get(msg.channel)
        if channel is not None:
            await _quietly(channel.typing(msg.external_id, True))
        # an offered payload as it is; anything typed as words, never an intent, and bounded
        message = msg.payload or payloads.for_nlu(msg.text, max_chars=self.settings.nlu_max_chars)
        started = time.perf_counter()
        try:
            async with self.admission.slot(verified=verified, timeout=self.settings.rasa_timeout):
                started = time.perf_counter()
                answers = await asyncio.wait_for(
                    self.rasa.send(conversation, message, verified=verified,
                                   language=_stored_language(msg, language)),
                    timeout=self.settings.rasa_timeout)
        except Overloaded:
            log.warning("no assistant slot for %s in %.0f s (verified: %s)", conversation,
                        self.settings.rasa_timeout, verified)
            self.metrics.errors.labels("overloaded").inc()
            if verified:
                return await self._assistant_failed(msg, conversation, inbound_id, language)
            await self._enqueue(conversation, language, [(texts.BUSY.get(language), {})],
                                inbound_id=inbound_id, route="refused")  # stored, not answered
            return Outcome("routed", route="busy", inbound_id=inbound_id, language=language)
        except (httpx.HTTPError, asyncio.TimeoutError, ValueError) as exc:
            kind = "rasa_timeout" if isinstance(exc, asyncio.TimeoutError) else "rasa_unavailable"
            log.warning("assistant failed for %s (%s): handing off", conversation, kind)
            self.metrics.errors.labels(kind).inc()
            return await self._assistant_failed(msg, conversation, inbound_id, language)
        finally:
            if channel is not None:
                await _quietly(channel.typing(msg.external_id, False))
        self.metrics.rasa_latency.observe(time.perf_counter() - started)
        if not answers:
            return await self._silent_assistant(msg, conversation, inbound_id, language)
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
                            route="rasa",
                            ticket_id=ticket_id if isinstance(ticket_id, int) else None)
        return Outcome("routed", route="rasa", inbound_id=inbound_id, language=language)

    async def _silent_assistant(self, msg: Incoming, conversation: str, inbound_id: int,
                                language: str) -> Outcome:
        """Rasa answered a customer's message with nothing at all: never leave them in silence.

        Every rule and action of Kefu's assistant says something to a customer's message, so
        an empty answer means a turn broke halfway (the action server died or timed out: Rasa
        logs it and carries on without the action's words). The customer gets the apology and
        ticket of an assistant that is down, unless the conversation is meanwhile handed to a
        person, whose ticket then gets the message.
        """
        ticket_id = await self.db(lambda s: _handed_off_id(s, conversation))
        if ticket_id is not None:
            routed = await self._to_ticket(msg, conversation, inbound_id, ticket_id, language)
            if routed is not None:
                return routed
        log.warning("the assistant answered %s with nothing (an action failed?): handing off",
                    conversation)
        self.metrics.errors.labels("rasa_empty_answer").inc()
        return await self._assistant_failed(msg, conversation, inbound_id, language)

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
                           kind="bot",
                           text=texts.ASSISTANT_DOWN.get(language, number=ticket.number),
                           language=language, ticket_id=ticket.id,
                           payload={REPLY_TO: inbound_id})
            claim(session, inbound_id, "fallback_ticket", ticket.id)

        await self.db(work)
        self.metrics.handoffs.labels("assistant_unavailable").inc()
        await self._deliver(conversation)
        return Outcome("routed", route="fallback_ticket", inbound_id=inbound_id, language=language)


def _stored_language(msg: Incoming, language: str) -> str | None:
    """The language Rasa is to keep for a message that has none of its own (a button, an
    order number); None when the words have one: Rasa reads it there, without the product
    names NLU found (``bot/nlu/speaker.py``), which this side cannot see."""
    return None if language_of_text(msg.text) else language


def _handed_off_id(session: Session, conversation: str) -> int | None:
    ticket = handoffs.handed_off_ticket(session, conversation_id=conversation)
    return ticket.id if ticket is not None else None


async def _quietly(call: Awaitable[None]) -> None:
    try:
        await call
    except Exception as exc:  # an indicator is never worth failing a message for
        log.debug("typing indicator failed: %s", exc)
