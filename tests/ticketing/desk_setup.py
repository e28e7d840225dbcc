"""Helpers shared by the ticket, ownership and escalation tests: a small desk and tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.desk import tickets
from ticketing.core.models import (
    Agent,
    AuditLog,
    Notification,
    OutboxMessage,
    Role,
    SlaTimer,
    Survey,
    Team,
    Ticket,
    TicketEvent,
    TicketMessage,
)

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # Monday 10:00 in Shanghai


@dataclass
class Desk:
    frontline: Team
    logistics: Team
    supervisors: Team
    operations: Team
    l1: Agent
    l1b: Agent
    l2: Agent
    supervisor: Agent
    l3: Agent


def build_desk(make) -> Desk:
    frontline = make.team(code="frontline", tier=1, categories=["*"])
    logistics = make.team(code="logistics", tier=2, categories=["logistics"])
    supervisors = make.team(code="supervisors", tier=2, categories=[])
    operations = make.team(code="operations", tier=3, categories=["*"])
    return Desk(
        frontline=frontline, logistics=logistics, supervisors=supervisors,
        operations=operations,
        l1=make.agent(team=frontline, name="Li"),
        l1b=make.agent(team=frontline, name="Wang"),
        l2=make.agent(team=logistics, name="Zhao"),
        supervisor=make.agent(team=supervisors, role=Role.SUPERVISOR, name="Chen"),
        l3=make.agent(team=operations, name="Sun"),
    )


def new_ticket(session: Session, make, *, customer=None, subject: str = "快递三天了还没收到",
               now: datetime = NOW, **kwargs) -> Ticket:
    customer = customer or make.customer()
    kwargs.setdefault("channel", "telegram")
    kwargs.setdefault("conversation_id", f"tg-{customer.id}")
    return tickets.create_ticket(session, customer_id=customer.id, subject=subject, now=now,
                                 **kwargs)


def snapshot(session: Session, ticket: Ticket | None = None) -> tuple:
    """Row counts of everything a ticket service writes, plus the ticket's own columns."""
    session.flush()
    counts = tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (Ticket, TicketEvent, TicketMessage, OutboxMessage, Notification, AuditLog,
                      SlaTimer, Survey)
    )
    if ticket is None:
        return counts
    session.refresh(ticket)
    return counts + (ticket.state, ticket.owner_id, ticket.assignee_id, ticket.tier,
                     ticket.version, ticket.resolution)


def events(session: Session, ticket: Ticket, kind: str | None = None) -> list[TicketEvent]:
    stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
    if kind is not None:
        stmt = stmt.where(TicketEvent.kind == kind)
    return list(session.scalars(stmt.order_by(TicketEvent.id)))
