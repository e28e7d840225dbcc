"""Tickets: creation from the bot or the desk, and the work along the loop of rules §LOOP-1.

Replies, customer messages, waiting, solving, reopening and closing all go through
``lifecycle.transition`` (re-exported here), so an illegal move raises IllegalTransition before
anything is written and every change is a TicketEvent. Claiming and transfers live in
``ownership``, escalation in ``escalation``, triage rules in ``triage``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from ticketing.conversations import outbox
from ticketing.desk import csat, lifecycle, notifications, ownership, repeat_contact, sla
from ticketing.core.clock import aware, utcnow
from ticketing.core.errors import (
    CustomerNotFound,
    IllegalTransition,
    OrderNotFound,
    ValidationError,
)
from ticketing.core.i18n import Text, normalize_language
from ticketing.desk.lifecycle import (  # re-exported: part of this module's documented API
    ACTIVE_STATES,
    ALLOWED,
    get_ticket,
    record_event,
    transition,
)
from ticketing.core.models import Category, Channel, Customer, Order, Ticket, TicketMessage, TicketState
from ticketing.desk.triage import (  # re-exported: part of this module's documented API
    classify,
    derive_priority,
    is_fraud,
    is_threat,
    raise_priority,
    starting_tier,
)

__all__ = [
    "ACTIVE_STATES", "ALLOWED", "add_customer_message", "agent_reply", "classify",
    "close", "create_ticket", "derive_priority", "get_ticket", "record_event", "reopen",
    "solve", "starting_tier", "ticket_number", "transition",
    "wait_for_customer",
]

_CHINA = timezone(timedelta(hours=8))  # ticket numbers carry the shop's date (no DST in China)

CUSTOMER_WROTE = Text(
    zh="客户在工单 {number} 中发来新消息：{excerpt}",
    en="The customer wrote on ticket {number}: {excerpt}",
)
TICKET_REOPENED = Text(
    zh="工单 {number} 已重新打开：{reason}",
    en="Ticket {number} was reopened: {reason}",
)
SOLVED_NOTICE = Text(
    zh="您的工单 {number} 已处理完毕：{resolution}\n如还有问题，直接回复即可。",
    en="Your ticket {number} has been resolved: {resolution}\n"
    "If anything is still wrong, just reply here.",
)
REOPEN_BY_CUSTOMER = Text(zh="客户再次来信", en="the customer wrote again")


def ticket_number(ticket_id: int, created_at: datetime) -> str:
    """'T' + shop date + the id zero-padded to 6 digits: readable, unique because the id is."""
    return f"T{aware(created_at).astimezone(_CHINA):%Y%m%d}{ticket_id:06d}"


def _required(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise ValidationError(f"{name} is required")
    return value.strip()


def _transcript(
    transcript: Iterable[Mapping[str, object]], now: datetime
) -> list[tuple[str, str, datetime]]:
    turns = []
    for turn in transcript:
        author = turn.get("author_type")
        body = turn.get("body")
        if author not in ("customer", "bot") or not isinstance(body, str) or not body.strip():
            raise ValidationError("transcript turns need author_type customer|bot and a body")
        at = turn.get("at") or now
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise ValidationError("transcript 'at' must be an aware datetime")
        turns.append((str(author), body, at))
    return turns


def create_ticket(
    session: Session,
    *,
    customer_id: int,
    subject: str,
    channel: Channel | str,
    language: str = "zh",
    category: Category | str | None = None,
    conversation_id: str | None = None,
    order_id: int | None = None,
    transcript: Iterable[Mapping[str, object]] = (),
    created_by_agent_id: int | None = None,
    text: str | None = None,
    dedupe: bool = False,
    reopen_window: timedelta | None = None,
    now: datetime | None = None,
) -> Ticket:
    """Open a ticket from a bot handoff (with its transcript) or from an agent at the desk.

    An agent who creates a ticket took the first contact, so they own it (首问负责制).
    With ``dedupe`` a live or recently solved ticket about the same order gets the new
    contact appended instead (back to its owner) and is returned.
    """
    now = now or utcnow()
    subject = _required(subject, "subject")[:200]
    try:
        channel = Channel(channel)
        category = None if category is None else Category(category)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id=customer_id)
    if order_id is not None:
        order = session.get(Order, order_id)
        if order is None or order.customer_id != customer_id:
            raise OrderNotFound(order_id=order_id)
    creator = None
    if created_by_agent_id is not None:
        creator = ownership.require_agent(session, created_by_agent_id)
    turns = _transcript(transcript, now)

    if dedupe:
        existing = ownership.route_contact(
            session, customer_id=customer_id, order_id=order_id, window=reopen_window, now=now
        )
        if existing is not None:
            _check_contact_allowed(session, existing, now, reopen_window)
            if conversation_id:  # replies go where the customer wrote last
                existing.conversation_id = conversation_id
            for author, body, at in turns:
                session.add(TicketMessage(ticket_id=existing.id, at=at, author_type=author,
                                          body=body))
            excerpt = text or next((b for a, b, _ in reversed(turns) if a == "customer"), subject)
            _customer_contact(session, ticket=existing, excerpt=excerpt, window=reopen_window,
                              now=now)
            return existing

    customer_text = " ".join(body for author, body, _ in turns if author == "customer")
    text = text if text is not None else f"{subject} {customer_text}".strip()
    category = category or classify(text)
    priority = derive_priority(category=category, text=text, segment=customer.segment)
    repeated = repeat_contact.recent_tickets(
        session, customer_id=customer_id, category=category, now=now) > 0
    if repeated:  # a second ticket within days: the first answer did not hold
        priority = raise_priority(priority)
    tier = starting_tier(category=category, priority=priority, segment=customer.segment,
                         text=text)
    flags = [name for name, hit in (("fraud", is_fraud(text)), ("threat", is_threat(text))) if hit]

    ticket = Ticket(
        number=f"tmp{uuid.uuid4().hex[:17]}",
        customer_id=customer_id,
        order_id=order_id,
        channel=channel,
        conversation_id=conversation_id,
        category=category,
        priority=priority,
        tier=tier,
        state=TicketState.NEW,
        subject=subject,
        language=normalize_language(language),
        flags=flags,
        created_at=now,
        reopen_count=0,
        version=1,
    )
    if creator is not None:
        ticket.state, ticket.owner_id, ticket.claimed_at = TicketState.OPEN, creator.id, now
        ticket.team_id = creator.team_id
    session.add(ticket)
    session.flush()
    ticket.number = ticket_number(ticket.id, now)
    for author, body, at in turns:
        session.add(TicketMessage(ticket_id=ticket.id, at=at, author_type=author, body=body))
    actor_type = "agent" if creator else "bot"
    record_event(
        session, ticket=ticket, kind="created", actor_type=actor_type,
        actor_id=creator.id if creator else None, to_value=ticket.state, now=now,
        data={"category": category.value, "priority": priority.value, "tier": tier,
              "channel": channel.value, "flags": flags, "repeat_contact": repeated},
    )
    if creator is not None:
        record_event(session, ticket=ticket, kind="claimed", actor_type="agent",
                     actor_id=creator.id, from_value=TicketState.NEW, to_value=TicketState.OPEN,
                     data={"owner_id": creator.id, "source": "created"}, now=now)
    session.flush()
    sla.start_ticket_timers(session, ticket=ticket, now=now)
    return ticket


def _within_window(session: Session, ticket: Ticket, now: datetime,
                   window: timedelta | None) -> bool:
    window = lifecycle.reopen_window(session) if window is None else window
    return ticket.solved_at is not None and aware(ticket.solved_at) >= now - window


def _check_contact_allowed(session: Session, ticket: Ticket, now: datetime,
                           window: timedelta | None) -> None:
    if ticket.state is TicketState.CLOSED or (
        ticket.state is TicketState.SOLVED and not _within_window(session, ticket, now, window)
    ):
        raise IllegalTransition("ticket is closed; open a new one", ticket_id=ticket.id)


def _notify_workers(session: Session, *, ticket: Ticket, kind: str, text: Text,
                    values: Mapping[str, object], skip: int | None = None,
                    now: datetime) -> None:
    for agent_id in dict.fromkeys((ticket.owner_id, ticket.assignee_id)):
        if agent_id is not None and agent_id != skip:
            notifications.notify(session, agent_id=agent_id, kind=kind, text=text,
                                 ticket_id=ticket.id, values=values, now=now)


def _customer_contact(session: Session, *, ticket: Ticket, excerpt: str,
                      window: timedelta | None, now: datetime) -> None:
    """The customer wrote again: back to the owner (reopening a solved ticket), clocks on."""
    if ticket.state is TicketState.SOLVED:
        repeat_contact.raise_for_repeat(session, ticket=ticket, now=now,
                                        reason=repeat_contact.REASON_REOPENED)
        reopen(session, ticket_id=ticket.id, actor_type="customer", actor_id=ticket.customer_id,
               reason=REOPEN_BY_CUSTOMER.get(ticket.language), reopen_window=window, now=now)
    elif ticket.state is TicketState.WAITING_CUSTOMER:
        transition(session, ticket=ticket, to=TicketState.OPEN, actor_type="customer",
                   actor_id=ticket.customer_id, reason="customer replied", now=now)
    _notify_workers(session, ticket=ticket, kind="customer_message", text=CUSTOMER_WROTE,
                    values={"number": ticket.number, "excerpt": excerpt[:80]}, now=now)
    sla.on_customer_message(session, ticket=ticket, now=now)


def add_customer_message(
    session: Session,
    *,
    ticket_id: int,
    body: str,
    attachments: list[dict[str, str]] | None = None,
    reopen_window: timedelta | None = None,
    now: datetime | None = None,
) -> TicketMessage:
    """Store the customer's message; closed or long-solved tickets refuse (start a new one)."""
    now = now or utcnow()
    body = _required(body, "body")
    ticket = get_ticket(session, ticket_id, lock=True)
    _check_contact_allowed(session, ticket, now, reopen_window)
    message = TicketMessage(ticket_id=ticket.id, at=now, author_type="customer",
                            author_id=ticket.customer_id, body=body,
                            attachments=list(attachments or []))
    session.add(message)
    _customer_contact(session, ticket=ticket, excerpt=body, window=reopen_window, now=now)
    session.flush()
    return message


def agent_reply(
    session: Session,
    *,
    ticket_id: int,
    agent_id: int,
    body: str,
    internal: bool = False,
    now: datetime | None = None,
) -> TicketMessage:
    """An agent writes on the thread; public replies go to the customer through the outbox."""
    now = now or utcnow()
    body = _required(body, "body")
    ticket = get_ticket(session, ticket_id, lock=True)
    agent = ownership.require_worker(session, ticket=ticket, agent_id=agent_id)
    if ticket.state is TicketState.CLOSED:
        raise IllegalTransition("ticket is closed", ticket_id=ticket.id)
    message = TicketMessage(ticket_id=ticket.id, at=now, author_type="agent",
                            author_id=agent.id, body=body, internal=internal)
    session.add(message)
    if not internal:
        outbox.enqueue(session, customer_id=ticket.customer_id,
                       conversation_id=ticket.conversation_id, kind="agent_reply", text=body,
                       language=ticket.language, ticket_id=ticket.id,
                       payload={"agent": agent.first_name, "ticket": ticket.number}, now=now)
        if ticket.first_response_at is None:
            ticket.first_response_at = now
        session.flush()
        sla.on_agent_response(session, ticket=ticket, now=now)
    session.flush()
    return message


def wait_for_customer(
    session: Session, *, ticket_id: int, agent_id: int, reason: str | None = None,
    now: datetime | None = None,
) -> Ticket:
    """The agent asked the customer something: park the ticket and pause the SLA clock."""
    ticket = get_ticket(session, ticket_id, lock=True)
    ownership.require_worker(session, ticket=ticket, agent_id=agent_id)
    return transition(session, ticket=ticket, to=TicketState.WAITING_CUSTOMER,
                      actor_type="agent", actor_id=agent_id, reason=reason, now=now)


def solve(
    session: Session, *, ticket_id: int, agent_id: int, resolution: str,
    now: datetime | None = None,
) -> Ticket:
    """Record the resolution, report it to the customer, then SLA follow-up and CSAT survey."""
    now = now or utcnow()
    resolution = _required(resolution, "resolution")
    ticket = get_ticket(session, ticket_id, lock=True)
    ownership.require_worker(session, ticket=ticket, agent_id=agent_id)
    if TicketState.SOLVED not in ALLOWED[ticket.state]:
        raise IllegalTransition(f"{ticket.state.value} → solved", ticket_id=ticket.id)
    ticket.resolution = resolution
    transition(session, ticket=ticket, to=TicketState.SOLVED, actor_type="agent",
               actor_id=agent_id, reason=resolution, kind="solved", now=now)
    outbox.enqueue(session, customer_id=ticket.customer_id,
                   conversation_id=ticket.conversation_id, kind="notice",
                   text=SOLVED_NOTICE.get(ticket.language, number=ticket.number,
                                          resolution=resolution),
                   language=ticket.language, ticket_id=ticket.id, now=now)
    csat.on_ticket_solved(session, ticket=ticket, now=now)
    return ticket


def reopen(
    session: Session, *, ticket_id: int, actor_type: str, actor_id: int | None, reason: str,
    reopen_window: timedelta | None = None, now: datetime | None = None,
) -> Ticket:
    """Solved → open, back to the same owner. Customers may reopen only within the window."""
    now = now or utcnow()
    reason = _required(reason, "reason")
    ticket = get_ticket(session, ticket_id, lock=True)
    if actor_type == "agent":
        if actor_id is None:
            raise ValidationError("actor_id is required for an agent")
        ownership.require_worker(session, ticket=ticket, agent_id=actor_id)
    elif actor_type == "customer":
        if actor_id != ticket.customer_id:
            raise ValidationError("not this ticket's customer")
        _check_contact_allowed(session, ticket, now, reopen_window)
    elif actor_type != "system":
        raise ValidationError(f"unknown actor_type {actor_type!r}")
    transition(session, ticket=ticket, to=TicketState.OPEN, actor_type=actor_type,
               actor_id=actor_id, reason=reason, kind="reopened",
               data={"owner_id": ticket.owner_id}, now=now)
    skip = actor_id if actor_type == "agent" else None
    _notify_workers(session, ticket=ticket, kind="reopened", text=TICKET_REOPENED,
                    values={"number": ticket.number, "reason": reason}, skip=skip, now=now)
    return ticket


def close(
    session: Session, *, ticket_id: int, actor_type: str = "agent", actor_id: int | None = None,
    reason: str | None = None, now: datetime | None = None,
) -> Ticket:
    """Solved → closed: final. Agents who work the ticket or the system (auto-close) may."""
    ticket = get_ticket(session, ticket_id, lock=True)
    if actor_type == "agent":
        if actor_id is None:
            raise ValidationError("actor_id is required for an agent")
        ownership.require_worker(session, ticket=ticket, agent_id=actor_id)
    elif actor_type != "system":
        raise ValidationError(f"unknown actor_type {actor_type!r}")
    return transition(session, ticket=ticket, to=TicketState.CLOSED, actor_type=actor_type,
                      actor_id=actor_id, reason=reason, kind="closed", now=now)
