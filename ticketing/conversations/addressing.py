"""Which chat a customer's messages go to: their newest channel identity, and only theirs.

A message owed to a customer without a conversation (a ticket opened at the desk, a notice
about an order) goes to the channel identity they used last; when they verify, what waited
for a channel goes there; when a chat is taken over by another customer (re-verified as
someone else), what is still owed there to the first one follows them instead. The outbox
(:mod:`ticketing.conversations.outbox`) queues and delivers; this module only addresses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.core.clock import utcnow
from ticketing.core.models import ChannelIdentity, InboundMessage, OutboxMessage


def newest_conversation(session: Session, *, customer_id: int) -> str | None:
    """The conversation of the customer's most recently used channel identity, or None.

    Most recent by the last message stored from it, else by when it was linked (verified),
    else by when it was first seen. Only identities linked to this customer count, so what
    is owed to one customer never reaches a chat that is someone else's.
    """
    last_seen = (select(func.max(InboundMessage.received_at))
                 .where(InboundMessage.conversation_id == ChannelIdentity.conversation_id)
                 .correlate(ChannelIdentity).scalar_subquery())
    used = func.coalesce(last_seen, ChannelIdentity.verified_at, ChannelIdentity.created_at)
    return session.scalars(
        select(ChannelIdentity.conversation_id)
        .where(ChannelIdentity.customer_id == customer_id)
        .order_by(used.desc(), ChannelIdentity.id.desc()).limit(1)).first()


def address(session: Session, *, customer_id: int, conversation_id: str,
             now: datetime) -> int:
    """Send the customer's messages that wait for a channel to ``conversation_id``, in order.

    Rows are locked oldest first (as every router here does), so two routers never deadlock.
    Their failed tries were waits for a channel, not deliveries: they start afresh, due now.
    """
    waiting = list(session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.customer_id == customer_id,
               OutboxMessage.conversation_id.is_(None),
               OutboxMessage.delivered_at.is_(None))
        .order_by(OutboxMessage.id).with_for_update(of=OutboxMessage)))
    for message in waiting:
        message.conversation_id = conversation_id
        message.attempts, message.last_error = 0, None
        message.next_attempt_at = min(message.next_attempt_at, now)
    session.flush()
    return len(waiting)


def route_customer(session: Session, *, customer_id: int,
                   now: datetime | None = None) -> str | None:
    """The customer can be reached now (just verified): what waited for a channel goes to
    their newest one. Returns that conversation, or None (nothing changes)."""
    conversation_id = newest_conversation(session, customer_id=customer_id)
    if conversation_id is not None:
        address(session, customer_id=customer_id, conversation_id=conversation_id,
                 now=now or utcnow())
    return conversation_id


def readdress(session: Session, *, conversation_id: str, customer_id: int,
              now: datetime | None = None) -> int:
    """The conversation now belongs to ``customer_id`` (re-verified as someone else): what is
    still owed there to another customer goes to that customer's newest identity instead, or
    waits for one. Returns how many messages moved."""
    now = now or utcnow()
    others = list(session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.conversation_id == conversation_id,
               OutboxMessage.delivered_at.is_(None),
               OutboxMessage.customer_id.is_not(None),
               OutboxMessage.customer_id != customer_id)
        .order_by(OutboxMessage.id).with_for_update(of=OutboxMessage)))
    homes: dict[int, str | None] = {}
    for message in others:
        owner = message.customer_id or 0  # never 0: rows without a customer are not read
        if owner not in homes:
            homes[owner] = newest_conversation(session, customer_id=owner)
        message.conversation_id = homes[owner]
        message.next_attempt_at = min(message.next_attempt_at, now)
    session.flush()
    return len(others)
