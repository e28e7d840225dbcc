"""No silence after a handoff: the customer hears that their message reached a person.

Once a conversation is handed to a ticket the bot stops answering; a customer writing into it
would otherwise see nothing until an agent replies, which may be hours. The first message
after the handoff, and the first after a quiet spell, get one automatic notice: the message is
on the ticket, who owns it and by when they will reply. A customer in a live exchange (an
agent replied in the last half hour) or one already told recently is not told again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ticketing.conversations import outbox
from ticketing.core.i18n import Text
from ticketing.core.local_time import short_moment
from ticketing.core.models import Agent, OutboxMessage, Ticket, TicketMessage
from ticketing.core.settings import schedule_of
from ticketing.desk import sla

KIND = "ticket_receipt"
QUIET = timedelta(minutes=30)

_OWNED_BY = Text("收到，您的消息已转给工单 {number} 的负责客服{owner}，会在 {deadline} 前回复您。",
                 "Got it: your message has reached {owner}, who owns ticket {number}, and you'll "
                 "get a reply by {deadline}.")
_QUEUED_BY = Text("收到，您的消息已加入工单 {number}，客服会在 {deadline} 前回复您。",
                  "Got it: your message is on ticket {number}, and an agent will reply by "
                  "{deadline}.")
_OWNED = Text("收到，您的消息已转给工单 {number} 的负责客服{owner}，会尽快回复您。",
              "Got it: your message has reached {owner}, who owns ticket {number}, and you'll "
              "get a reply as soon as they can.")
_QUEUED = Text("收到，您的消息已加入工单 {number}，客服会尽快回复您。",
               "Got it: your message is on ticket {number}, and an agent will reply as soon as "
               "they can.")


def acknowledge(session: Session, *, ticket: Ticket, conversation_id: str, language: str,
                now: datetime) -> OutboxMessage | None:
    """Owe the customer a receipt for the message just added to ``ticket``, unless an agent
    or a receipt spoke to them within :data:`QUIET`; returns the outbox row, if any."""
    since = now - QUIET
    told = session.scalar(select(exists().where(
        OutboxMessage.ticket_id == ticket.id, OutboxMessage.kind == KIND,
        OutboxMessage.created_at >= since)))
    answered = session.scalar(select(exists().where(
        TicketMessage.ticket_id == ticket.id, TicketMessage.author_type == "agent",
        TicketMessage.internal.is_(False), TicketMessage.at >= since)))
    if told or answered:
        return None
    owner = session.get(Agent, ticket.owner_id) if ticket.owner_id is not None else None
    deadline = sla.next_deadline(session, ticket=ticket)
    values: dict[str, object] = {"number": ticket.number}
    if owner is not None:
        values["owner"] = owner.display_name
    if deadline is not None:
        values["deadline"] = short_moment(deadline, language=language,
                                          timezone=schedule_of(session).timezone)
    template = {(True, True): _OWNED_BY, (False, True): _QUEUED_BY, (True, False): _OWNED,
                (False, False): _QUEUED}[(owner is not None, deadline is not None)]
    return outbox.enqueue(session, customer_id=ticket.customer_id,
                          conversation_id=conversation_id, kind=KIND,
                          text=template.get(language, **values), language=language,
                          ticket_id=ticket.id, now=now)
