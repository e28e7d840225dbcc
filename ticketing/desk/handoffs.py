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
from ticketing.core.models import Category, Channel, ChannelIdentity, Ticket

ASSISTANT_UNAVAILABLE = Text("机器人暂时无法应答", "The assistant could not answer")

HANDOFF_MARKER_KEY = "kefu"
"""The key of the marker in a bot message's ``custom`` payload (Rasa ``json_message``).

Built by :func:`handoff_marker` and :func:`unavailable_marker`, read by the gateway
(``bot.rasa_client``). It never reaches a customer. Two shapes::

    {"kefu": {"handoff": true, "ticket_id": 17, "ticket_number": "T20261125000017",
              "reason": "human_handoff", "category": "logistics", "priority": "normal",
              "language": "zh"}}
    {"kefu": {"error": "backend_unavailable", "failed_action": "action_track_order",
              "language": "zh"}}

The first: the conversation now belongs to the people of that ticket (and Rasa is paused).
The second: an action failed and the action server could not reach the database to open a
ticket either; the customer got an apology and nothing else happened.
"""
BACKEND_UNAVAILABLE = "backend_unavailable"


def handoff_marker(ticket: Ticket, *, reason: str, language: str) -> dict[str, dict[str, object]]:
    """The marker of a conversation handed to ``ticket`` (see :data:`HANDOFF_MARKER_KEY`)."""
    return {HANDOFF_MARKER_KEY: {
        "handoff": True,
        "ticket_id": ticket.id,
        "ticket_number": ticket.number,
        "reason": reason,
        "category": ticket.category.value,
        "priority": ticket.priority.value,
        "language": language,
    }}


def unavailable_marker(*, failed_action: str, language: str) -> dict[str, dict[str, object]]:
    """The marker of a failure no ticket could be opened for (see :data:`HANDOFF_MARKER_KEY`)."""
    return {HANDOFF_MARKER_KEY: {"error": BACKEND_UNAVAILABLE, "failed_action": failed_action,
                                 "language": language}}


def ticket_channel(conversation_id: str) -> Channel:
    """The ticket channel of a conversation; a sender of no known channel (a shell, a test)
    counts as the widget."""
    channel = customers.split_conversation_id(conversation_id)[0]
    if channel in (Channel.TELEGRAM.value, Channel.WIDGET.value):
        return Channel(channel)
    return Channel.WIDGET


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
    order_id: int | None = None,
    transcript: Iterable[Mapping[str, object]] = (),
    now: datetime | None = None,
) -> Ticket:
    """A ticket for a conversation people must take over, and the handoff to it.

    The one way a conversation gets a ticket and a handoff: the assistant asking for a person
    and the gateway when the assistant is down both come here. The
    visitor's own customer record carries it, or a guest record for an anonymous visitor; a
    live ticket of the same customer about the same thing (``order_id``) gets the contact
    instead (then ``ticket.created_at`` is before ``now``). ``category`` None: triage from
    ``text``.
    """
    now = now or utcnow()
    customer = customers.guest_customer(session, conversation_id=conversation_id,
                                        language=language, now=now)
    ticket = tickets.create_ticket(
        session, customer_id=customer.id, subject=subject.get(language),
        channel=ticket_channel(conversation_id), language=language, category=category,
        conversation_id=conversation_id, order_id=order_id, transcript=transcript, text=text,
        dedupe=True, now=now)
    mark(session, conversation_id=conversation_id, ticket_id=ticket.id, now=now)
    return ticket


def is_over(session, *, conversation_id: str, ticket_id: int) -> bool:
    """The conversation is still handed to ``ticket_id`` but that ticket is solved or closed."""
    ticket = handed_off_ticket(session, conversation_id=conversation_id)
    return ticket is not None and ticket.id == ticket_id and ticket.state not in ACTIVE_STATES
