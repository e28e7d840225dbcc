"""Derived per-ticket and per-conversation records that reports read (docs/metrics.md).

They are never the system of record: :mod:`ticketing.desk.facts` recomputes a ticket's row in
the same transaction as any change to the ticket, and can rebuild them all from the tickets,
events, messages, timers and surveys. One narrow row per ticket lets a 30-day dashboard over a
million tickets be a handful of indexed aggregate queries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint, text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base


class TicketFact(Base):
    """One ticket as the reports see it. Durations are seconds, calendar and business.

    ``sla_*`` is ``met``, ``breached``, ``pending`` (clock running; ``*_due_at`` says when it
    breaches) or None (no such clock ran). Dimensions are copied so filters need no joins;
    ``created_day`` and ``survey_day`` are local dates in the shop's time zone.
    """

    __tablename__ = "ticket_facts"
    __table_args__ = (
        Index("ix_ticket_facts_created", "created_at"),
        # satisfaction by sending time, per day, agent or team: read from the index alone
        Index("ix_ticket_facts_survey", "survey_sent_at",
              postgresql_include=["survey_day", "csat_score", "survey_agent_id",
                                  "survey_team_id"],
              postgresql_where=text("survey_sent_at IS NOT NULL"),
              sqlite_where=text("survey_sent_at IS NOT NULL")),
        # "breached now": the open tickets' verdicts without reading the table (index-only)
        Index("ix_ticket_facts_open", "state",
              postgresql_include=["sla_first_response", "sla_first_response_due_at",
                                  "sla_next_response", "sla_next_response_due_at",
                                  "sla_resolution", "sla_resolution_due_at"],
              postgresql_where=text("state IN ('new', 'open', 'waiting_customer')"),
              sqlite_where=text("state IN ('new', 'open', 'waiting_customer')")),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column()
    created_day: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8))
    tier: Mapped[int] = mapped_column(Integer)
    segment: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    handed_off: Mapped[bool] = mapped_column(Boolean, default=False)  # opened by the bot
    first_response_at: Mapped[datetime | None] = mapped_column()
    first_response_s: Mapped[float | None] = mapped_column(Float)
    first_response_bh_s: Mapped[float | None] = mapped_column(Float)
    replies_waited: Mapped[int] = mapped_column(Integer, default=0)  # next responses counted
    first_solved_at: Mapped[datetime | None] = mapped_column()
    last_solved_at: Mapped[datetime | None] = mapped_column()
    resolution_first_s: Mapped[float | None] = mapped_column(Float)
    resolution_first_bh_s: Mapped[float | None] = mapped_column(Float)
    resolution_last_s: Mapped[float | None] = mapped_column(Float)
    resolution_last_bh_s: Mapped[float | None] = mapped_column(Float)
    reopened: Mapped[int] = mapped_column(Integer, default=0)  # times reopened
    escalated: Mapped[int] = mapped_column(Integer, default=0)  # times escalated
    sla_first_response: Mapped[str | None] = mapped_column(String(8))
    sla_first_response_due_at: Mapped[datetime | None] = mapped_column()
    sla_next_response: Mapped[str | None] = mapped_column(String(8))
    sla_next_response_due_at: Mapped[datetime | None] = mapped_column()
    sla_resolution: Mapped[str | None] = mapped_column(String(8))
    sla_resolution_due_at: Mapped[datetime | None] = mapped_column()
    survey_sent_at: Mapped[datetime | None] = mapped_column()
    survey_day: Mapped[str | None] = mapped_column(String(10))
    survey_agent_id: Mapped[int | None] = mapped_column(Integer)  # credited at sending
    survey_team_id: Mapped[int | None] = mapped_column(Integer)
    csat_score: Mapped[int | None] = mapped_column(Integer)
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReplyWait(Base):
    """A customer waiting for a human: the first response (``seq`` 0) and every next one.

    A wait starts when the ticket reaches the desk (first) or when the customer writes after
    an agent's last public reply (next), and ends at the next public agent reply.
    """

    __tablename__ = "reply_waits"
    __table_args__ = (
        # next-response percentiles join the period's tickets to their answered next waits
        Index("ix_reply_waits_next", "ticket_id",
              postgresql_include=["seconds", "business_seconds"],
              postgresql_where=text("seq > 0 AND seconds IS NOT NULL"),
              sqlite_where=text("seq > 0 AND seconds IS NOT NULL")),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    asked_at: Mapped[datetime] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    seconds: Mapped[float | None] = mapped_column(Float)
    business_seconds: Mapped[float | None] = mapped_column(Float)


class ConversationFact(Base):
    """One conversation with the assistant, for containment and handoff rates.

    A channel's conversation id lives as long as the chat does, so a *conversation* here is a
    run of messages without a long silence (``ticketing.desk.conversation_facts``); the first
    ticket opened during it is kept (``handed_off`` when the bot handed it to people).
    """

    __tablename__ = "conversation_facts"
    __table_args__ = (
        UniqueConstraint("conversation_id", "started_at"),
        # containment and handoff rates by start time: read from the index alone
        Index("ix_conversation_facts_started_at", "started_at",
              postgresql_include=["ticket_id", "handed_off", "channel"]),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(160), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column()
    started_day: Mapped[str] = mapped_column(String(10))
    last_message_at: Mapped[datetime] = mapped_column()
    messages: Mapped[int] = mapped_column(Integer, default=0)
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    handed_off: Mapped[bool] = mapped_column(Boolean, default=False)


class Alert(Base):
    """Something abnormal a manager should look at (rules: abnormal orders, payments, rising
    refund rates). At most one open alert per (kind, subject); ``resolved_at`` closes it."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ux_alerts_open", "kind", "subject", unique=True,
              sqlite_where=text("resolved_at IS NULL"),
              postgresql_where=text("resolved_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # refund_rate, repeated_refunds, sla_breaches
    subject: Mapped[str] = mapped_column(String(80))  # "category:phones", "customer:42", "all"
    opened_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    value: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float | None] = mapped_column(Float)
    sample: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    notified_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
