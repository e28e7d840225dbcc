"""What leaves the system: the customer outbox and agents' notifications."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base


class OutboxMessage(Base):
    """A message owed to a customer; it stays here until the gateway confirms delivery."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str | None] = mapped_column(String(160), index=True)
    # None for an anonymous visitor's conversation (then conversation_id is required)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(24))  # agent_reply, csat_request, followup, notice
    language: Mapped[str] = mapped_column(String(8), default="zh")
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)  # buttons, intent...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column()


class InboundMessage(Base):
    """What a customer wrote, stored before it is routed, so nothing written is lost.

    ``dedupe_key`` is the channel's own id of the message (Telegram ``update_id``, the
    widget's ``client_id``): a redelivered update finds its row and is not handled twice.
    ``route`` says where it went (``rasa``, ``ticket``, ``fallback_ticket``, ``refused``...).
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("channel", "dedupe_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[str] = mapped_column(String(160), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)  # button, attachments
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column()
    route: Mapped[str | None] = mapped_column(String(24))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))


class Notification(Base):
    """Something an agent must see: a customer wrote back, a warning, a breach."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(32))
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column()


class AuditLog(Base):
    """Sensitive actions and permission changes (rules §SEC-6). Details are masked, never raw PII."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(48), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
