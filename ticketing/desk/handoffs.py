"""Which conversations a person has taken over, and handing them over or back.

A conversation is handed off while its channel identity points at a live ticket: the gateway
then sends the customer's messages to that ticket's thread (its owner is notified, the
response clock starts) instead of to the assistant. A solved or closed ticket no longer holds
the conversation: the gateway hands it back to the assistant (and the CSAT survey runs there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from ticketing.desk import tickets
from ticketing.shop import customers
from ticketing.core.clock import utcnow
from ticketing.core.i18n import Text
from ticketing.desk.lifecycle import ACTIVE_STATES
from ticketing.core.models import Category, ChannelIdentity, Ticket

ASSISTANT_UNAVAILABLE = Text("机器人暂时无法应答", "The assistant could not answer")


def _identity(session, conversation_id: str, now: datetime | None = None) -> ChannelIdentity:
    channel, external_id = customers.split_conversation_id(conversation_id)
    return customers.identity_for(session, channel=channel, external_id=external_id, now=now)


def handed_off_ticket(session, *, conversation_id: str) -> Ticket | None:
    """The ticket holding the conversation, or None while the assistant has it."""
    identity = customers.identity_by_conversation(session, conversation_id=conversation_id)
    if identity is None or identity.handed_off_ticket_id is None:
        return None
    return session.get(Ticket, identity.handed_off_ticket_id)


def active_ticket(session, *, conversation_id: str) -> Ticket | None:
    """The handed-off ticket if people are still working on it (new, open, waiting)."""
    ticket = handed_off_ticket(session, conversation_id=conversation_id)
    return ticket if ticket is not None and ticket.state in ACTIVE_STATES else None


def mark(session, *, conversation_id: str, ticket_id: int, now: datetime | None = None) -> None:
    """The conversation now belongs to the people of ``ticket_id``."""
    _identity(session, conversation_id, now).handed_off_ticket_id = ticket_id
    session.flush()


def release(session, *, conversation_id: str) -> int | None:
    """Hand the conversation back to the assistant; returns the ticket it was handed to."""
    identity = customers.identity_by_conversation(session, conversation_id=conversation_id)
    if identity is None or identity.handed_off_ticket_id is None:
        return None
    ticket_id = identity.handed_off_ticket_id
    identity.handed_off_ticket_id = None
    session.flush()
    return ticket_id


def open_for_conversation(
    session,
    *,
    conversation_id: str,
    text: str,
    language: str = "zh",
    subject: Text = ASSISTANT_UNAVAILABLE,
    category: Category | None = None,
    transcript: Iterable[Mapping[str, object]] = (),
    now: datetime | None = None,
) -> Ticket:
    """A ticket for a conversation the assistant cannot serve, and the handoff to it.

    The visitor's own customer record carries it, or a guest record for an anonymous visitor;
    a live ticket of the same customer about the same thing gets the contact instead.
    """
    now = now or utcnow()
    channel, _external = customers.split_conversation_id(conversation_id)
    customer = customers.guest_customer(session, conversation_id=conversation_id,
                                        language=language, now=now)
    ticket = tickets.create_ticket(
        session, customer_id=customer.id, subject=subject.get(language), channel=channel,
        language=language, category=category, conversation_id=conversation_id,
        transcript=transcript, text=text, dedupe=True, now=now)
    mark(session, conversation_id=conversation_id, ticket_id=ticket.id, now=now)
    return ticket


def is_over(session, *, conversation_id: str, ticket_id: int) -> bool:
    """The conversation is still handed to ``ticket_id`` but that ticket is solved or closed."""
    ticket = handed_off_ticket(session, conversation_id=conversation_id)
    return ticket is not None and ticket.id == ticket_id and ticket.state not in ACTIVE_STATES
