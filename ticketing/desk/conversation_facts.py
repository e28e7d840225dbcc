"""The reports' conversations: runs of a chat's inbound messages and the ticket they led to.

A channel's conversation id lasts as long as the chat does, so a *conversation* is a run of
messages with no silence longer than :data:`CONVERSATION_GAP`. The first ticket opened during
it decides containment: none → the bot coped; opened by the bot's handoff → handed off.
Kept up to date by :mod:`ticketing.desk.facts` in the transaction that stores the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, delete, exists, select, update
from sqlalchemy.orm import Session

from ticketing.core.clock import aware
from ticketing.core.models.base import UTCDateTime
from ticketing.core.models import ConversationFact, InboundMessage, Ticket, TicketEvent
from ticketing.core.settings import schedule_of
from ticketing.desk.upsert import upsert

CONVERSATION_GAP = timedelta(hours=24)  # a longer silence starts a new conversation


class Arrival(NamedTuple):
    """A message just stored: whose conversation, which channel, when."""

    conversation_id: str
    channel: str
    received_at: datetime


def extend(session: Session, arrivals: Sequence[Arrival]) -> None:
    """Fold newly stored inbound messages into their conversations, oldest first."""
    zone = ZoneInfo(schedule_of(session).timezone)
    for conversation_id, channel, received_at in sorted(arrivals, key=lambda a: aware(
            a.received_at)):
        _fold(session, conversation_id, channel, aware(received_at), zone)


def _fold(session: Session, conversation_id: str, channel: str, at: datetime,
          zone: ZoneInfo) -> None:
    if _continued(session, conversation_id, at):
        # no ticket lookup: a ticket opened for a chat credits its conversation when it is
        # created (note_ticket); only a new conversation looks for one opened before it
        return
    row = {"conversation_id": conversation_id, "channel": channel, "started_at": at,
           "started_day": at.astimezone(zone).date().isoformat(), "last_message_at": at,
           "messages": 1, "ticket_id": None, "handed_off": False}
    upsert(session, ConversationFact, [row], ["conversation_id", "started_at"])
    found = _first_ticket(session, conversation_id, at, at)
    if found is not None:  # a ticket opened before this message was stored (a replay)
        session.connection().execute(
            update(ConversationFact)
            .where(ConversationFact.conversation_id == conversation_id,
                   ConversationFact.started_at == at, ConversationFact.ticket_id.is_(None))
            .values(ticket_id=found[0], handed_off=found[1]))


_AT = bindparam("at", type_=UTCDateTime())
_LATEST_START = (select(ConversationFact.started_at)
                 .where(ConversationFact.conversation_id == bindparam("conversation"),
                        ConversationFact.started_at <= _AT)
                 .order_by(ConversationFact.started_at.desc()).limit(1).scalar_subquery())
# the latest conversation gets the message when its last one is recent enough: one statement
# a turn (the stored message of every turn comes here), built once, run as Core
_CONTINUE = (update(ConversationFact)
             .where(ConversationFact.conversation_id == bindparam("conversation"),
                    ConversationFact.started_at == _LATEST_START,
                    ConversationFact.last_message_at >= bindparam("since", type_=UTCDateTime()))
             .values(messages=ConversationFact.messages + 1,
                     last_message_at=case(
                         (ConversationFact.last_message_at < _AT, _AT),
                         else_=ConversationFact.last_message_at)))


def _continued(session: Session, conversation_id: str, at: datetime) -> bool:
    """Count the message in the conversation it continues; False when it starts a new one.

    Run on the session's connection, not through the ORM (which would look for the row among
    loaded objects first): a row this transaction loaded is only ever a new conversation's,
    whose ``messages`` nothing reads afterwards.
    """
    changed = session.connection().execute(
        _CONTINUE, {"conversation": conversation_id, "at": at, "since": at - CONVERSATION_GAP})
    return bool(changed.rowcount)


def _attach_ticket(session: Session, conversation: ConversationFact) -> None:
    """The first ticket opened for the conversation while it lasted (set once)."""
    if conversation.ticket_id is not None:
        return
    found = _first_ticket(session, conversation.conversation_id, conversation.started_at,
                          aware(conversation.last_message_at))
    if found is not None:
        conversation.ticket_id, conversation.handed_off = found


def _first_ticket(session: Session, conversation_id: str, started_at: datetime,
                  last_message_at: datetime) -> tuple[int, bool] | None:
    """The first ticket opened during the conversation, and whether the bot opened it."""
    by_bot = exists().where(TicketEvent.ticket_id == Ticket.id, TicketEvent.kind == "created",
                            TicketEvent.actor_type == "bot")
    found = session.execute(
        select(Ticket.id, by_bot).where(
            Ticket.conversation_id == conversation_id, Ticket.created_at >= started_at,
            Ticket.created_at <= last_message_at + CONVERSATION_GAP)
        .order_by(Ticket.created_at, Ticket.id).limit(1)
    ).first()
    return (found[0], bool(found[1])) if found is not None else None


def note_ticket(session: Session, ticket: Ticket) -> None:
    """A ticket opened for a chat: credit it to the conversation it happened in."""
    if not ticket.conversation_id:
        return
    conversation = session.scalars(
        select(ConversationFact).where(
            ConversationFact.conversation_id == ticket.conversation_id,
            ConversationFact.started_at <= ticket.created_at)
        .order_by(ConversationFact.started_at.desc()).limit(1)
    ).first()
    if conversation is not None:
        _attach_ticket(session, conversation)


def rebuild(session: Session) -> None:
    """Every conversation again from the stored inbound messages."""
    session.execute(delete(ConversationFact))
    zone = ZoneInfo(schedule_of(session).timezone)
    rows = session.execute(
        select(InboundMessage.conversation_id, InboundMessage.channel, InboundMessage.received_at)
        .order_by(InboundMessage.conversation_id, InboundMessage.received_at))
    for conversation_id, channel, received_at in rows:
        _fold(session, conversation_id, channel, aware(received_at), zone)
    session.flush()
