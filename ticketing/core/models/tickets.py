"""Tickets (rules §LOOP-1 loop), their event log, thread messages and SLA timers."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base, enum_column


class TicketState(str, enum.Enum):
    NEW = "new"  # found, nobody owns it yet
    OPEN = "open"  # owned, being diagnosed / worked on
    WAITING_CUSTOMER = "waiting_customer"  # asked the customer something; SLA clock paused
    SOLVED = "solved"  # reported back; customer may still reopen
    CLOSED = "closed"  # final


class Category(str, enum.Enum):
    LOGISTICS = "logistics"
    QUALITY = "quality"
    PAYMENT = "payment"
    REFUND = "refund"
    ORDER = "order"
    PRODUCT = "product"
    ACCOUNT = "account"
    OTHER = "other"


class Priority(str, enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Channel(str, enum.Enum):
    TELEGRAM = "telegram"
    WIDGET = "widget"
    DESK = "desk"  # created by an agent (phone call, e-mail...)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # shown to customers
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    channel: Mapped[Channel] = mapped_column(enum_column(Channel))
    conversation_id: Mapped[str | None] = mapped_column(String(160), index=True)
    category: Mapped[Category] = mapped_column(enum_column(Category))
    priority: Mapped[Priority] = mapped_column(enum_column(Priority))
    tier: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[TicketState] = mapped_column(enum_column(TicketState), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="zh")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"),
                                                    index=True)  # higher-tier helper
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)  # abnormal-behaviour flags
    resolution: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    claimed_at: Mapped[datetime | None] = mapped_column()
    first_response_at: Mapped[datetime | None] = mapped_column()
    solved_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id"
    )
    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", order_by="TicketMessage.id"
    )
    timers: Mapped[list[SlaTimer]] = relationship(back_populates="ticket")


class TicketEvent(Base):
    """Every change to a ticket: who, when, what, why."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))  # created, claimed, state_changed, escalated, ...
    actor_type: Mapped[str] = mapped_column(String(16))  # agent | customer | bot | system
    actor_id: Mapped[int | None] = mapped_column(Integer)
    from_value: Mapped[str | None] = mapped_column(String(64))
    to_value: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class TicketMessage(Base):
    """The thread: customer, bot and agent turns, including the bot transcript."""

    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    author_type: Mapped[str] = mapped_column(String(16))  # customer | bot | agent | system
    author_id: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(default=False)  # agent-only note
    attachments: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")


class TimerKind(str, enum.Enum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"
    FOLLOWUP = "followup"  # 回访 after solving
    CSAT_REMINDER = "csat_reminder"


class TimerStatus(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    DONE = "done"  # met, fired or cancelled


class SlaTimer(Base):
    """A deadline in the database, the system of record for every timer.

    ``fire_at`` is the next instant the worker must act (the 80 % warning, then the breach);
    firing is a compare-and-set on (id, fire_at, status) so two workers never fire twice.
    """

    __tablename__ = "sla_timers"
    __table_args__ = (
        Index("ix_sla_timers_due", "status", "fire_at"),
        UniqueConstraint("ticket_id", "kind", "generation"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[TimerKind] = mapped_column(enum_column(TimerKind))
    generation: Mapped[int] = mapped_column(Integer, default=1)  # restarts make a new row
    status: Mapped[TimerStatus] = mapped_column(enum_column(TimerStatus))
    started_at: Mapped[datetime] = mapped_column()
    deadline_at: Mapped[datetime | None] = mapped_column()
    warn_at: Mapped[datetime | None] = mapped_column()
    fire_at: Mapped[datetime | None] = mapped_column()
    remaining_seconds: Mapped[float | None] = mapped_column()  # business seconds left while paused
    warned_at: Mapped[datetime | None] = mapped_column()
    breached_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()

    ticket: Mapped[Ticket] = relationship(back_populates="timers")
