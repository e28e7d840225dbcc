"""A guest's tickets follow the visitor who verifies (issue 13).

An anonymous visitor who asks for a person gets a ticket carried by a guest record
(:func:`ticketing.shop.customers.guest_customer`). When that visitor then proves who they are
(a Telegram user shares their own phone, a widget page signs in with the shop's token), the
guest's tickets become the customer's: in their ticket list, shown with their name at the
desk, and what is still owed on them goes where the customer now talks. For Telegram the
conversation stays the same; the widget's signed-in conversation is ``widget:c-<id>``, so the
tickets, the handoff and the undelivered messages move there.

Only a guest identity's own record is ever taken: an unverified identity whose customer has
no shop identity (no shop id, no phone) and no other identity. A verified identity, a real
customer or another visitor's record are never touched. One transaction, rows locked, and a
second verification finds nothing left to move (idempotent). Audited (rules §SEC-6) and
recorded on each ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.core.clock import utcnow
from ticketing.core.errors import CustomerNotFound
from ticketing.core.models import (
    ChannelIdentity,
    Customer,
    OutboxMessage,
    Survey,
    Ticket,
)
from ticketing.desk.lifecycle import ACTIVE_STATES, record_event
from ticketing.shop import customers

EVENT = "customer_verified"  # on each ticket that changed hands
AUDIT_ACTION = "identity.guest_adopted"


@dataclass(frozen=True)
class Adoption:
    """What moved. ``released``: a guest conversation no longer handed off, which the
    assistant must resume (the caller does: ``ticketing`` never talks to Rasa)."""

    guest_customer_id: int | None = None
    ticket_ids: tuple[int, ...] = ()
    ticket_numbers: tuple[str, ...] = ()
    messages: int = 0
    released: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.ticket_ids or self.messages or self.released)


NOTHING = Adoption()


def _guest_identity(session: Session, conversation_id: str) -> ChannelIdentity | None:
    """The identity of ``conversation_id``, locked, if it is an unverified guest's."""
    identity = session.scalars(
        select(ChannelIdentity).where(ChannelIdentity.conversation_id == conversation_id)
        .with_for_update().execution_options(populate_existing=True)).one_or_none()
    if identity is None or identity.verified_at is not None or identity.customer_id is None:
        return None
    return identity


def _is_guest_record(session: Session, identity: ChannelIdentity) -> bool:
    """The identity's customer is a guest record made for it alone, not a shop customer."""
    guest = session.get(Customer, identity.customer_id)
    if guest is None or guest.external_id is not None or guest.phone_lookup is not None:
        return False
    shared = session.scalar(select(func.count()).select_from(ChannelIdentity).where(
        ChannelIdentity.customer_id == guest.id, ChannelIdentity.id != identity.id))
    return not shared


def adopt_guest(
    session: Session, *, guest_conversation_id: str, customer_id: int,
    conversation_id: str | None = None, method: str, now: datetime | None = None,
) -> Adoption:
    """Give the guest of ``guest_conversation_id`` to ``customer_id``; call it in the
    transaction that verifies, before the identity is linked.

    ``conversation_id``: where the verified customer talks from now on (default: the guest's
    conversation, as in Telegram). Returns what moved; :data:`NOTHING` when the identity is no
    guest (already verified, never asked for a person, or not a guest record).
    """
    now = now or utcnow()
    if session.get(Customer, customer_id) is None:
        raise CustomerNotFound(customer_id=customer_id)
    target = conversation_id or guest_conversation_id
    identity = _guest_identity(session, guest_conversation_id)
    if identity is None or identity.customer_id == customer_id \
            or not _is_guest_record(session, identity):
        return NOTHING
    guest_id = identity.customer_id
    moved = list(session.scalars(
        select(Ticket).where(Ticket.customer_id == guest_id).order_by(Ticket.id)
        .with_for_update().execution_options(populate_existing=True)))
    for ticket in moved:
        ticket.customer_id = customer_id
        if ticket.conversation_id in (None, guest_conversation_id):
            ticket.conversation_id = target
        record_event(session, ticket=ticket, kind=EVENT, actor_type="customer",
                     actor_id=customer_id, now=now,
                     data={"guest_customer_id": guest_id, "customer_id": customer_id,
                           "method": method, "conversation_id": target})
    ticket_ids = tuple(t.id for t in moved)
    if ticket_ids:
        session.execute(update(Survey).where(Survey.ticket_id.in_(ticket_ids))
                        .values(customer_id=customer_id))
    messages = _move_owed(session, guest_conversation_id=guest_conversation_id,
                          guest_id=guest_id, customer_id=customer_id, target=target, now=now)
    released = _move_handoff(session, identity, target=target, ticket_ids=ticket_ids, now=now)
    adoption = Adoption(guest_customer_id=guest_id, ticket_ids=ticket_ids,
                        ticket_numbers=tuple(t.number for t in moved), messages=messages,
                        released=released)
    if not adoption.changed:
        return NOTHING
    audit.record(session, action=AUDIT_ACTION, actor_type="customer", actor_id=customer_id,
                 target_type="channel_identity", target_id=guest_conversation_id[:64],
                 details={"customer_id": customer_id, "guest_customer_id": guest_id,
                          "ticket_ids": list(ticket_ids), "conversation_id": target,
                          "messages": messages, "method": method}, now=now)
    session.flush()
    return adoption


def _move_owed(session: Session, *, guest_conversation_id: str, guest_id: int,
               customer_id: int, target: str, now: datetime) -> int:
    """Undelivered messages of the guest go to the customer, where the customer talks now."""
    owed = list(session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.delivered_at.is_(None),
               or_(OutboxMessage.conversation_id == guest_conversation_id,
                   OutboxMessage.customer_id == guest_id))
        .order_by(OutboxMessage.id).with_for_update(of=OutboxMessage)))
    for message in owed:
        if message.customer_id in (None, guest_id):
            message.customer_id = customer_id
        if target != guest_conversation_id \
                and message.conversation_id in (None, guest_conversation_id):
            message.conversation_id = target  # the guest's page is gone: due at once there
            message.attempts, message.last_error = 0, None
            message.next_attempt_at = min(message.next_attempt_at, now)
    session.flush()
    return len(owed)


def _move_handoff(session: Session, identity: ChannelIdentity, *, target: str,
                  ticket_ids: tuple[int, ...], now: datetime) -> str | None:
    """The guest conversation's handoff follows its ticket to ``target``; returns the guest
    conversation when it was released (None when the conversation did not change)."""
    ticket_id = identity.handed_off_ticket_id
    if target == identity.conversation_id or ticket_id is None or ticket_id not in ticket_ids:
        return None
    identity.handed_off_ticket_id = None
    ticket = session.get(Ticket, ticket_id)
    channel, external_id = customers.split_conversation_id(target)
    home = customers.identity_for(session, channel=channel, external_id=external_id, now=now)
    current = session.get(Ticket, home.handed_off_ticket_id) \
        if home.handed_off_ticket_id is not None else None
    # the customer's chat keeps a live handoff of its own; otherwise it now belongs to this one
    if ticket is not None and ticket.state in ACTIVE_STATES \
            and (current is None or current.state not in ACTIVE_STATES):
        home.handed_off_ticket_id = ticket_id
    session.flush()
    return identity.conversation_id
