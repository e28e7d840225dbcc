"""Outgoing webhooks: the shop's endpoints, the events owed to them and every delivery attempt.

The queue is these tables, not memory: an event and its deliveries are written in the same
transaction as the change that caused them (:mod:`ticketing.desk.webhooks.events`), and a
delivery leaves the queue only when an endpoint answered 2xx or it ran out of attempts, so a
restart loses nothing. A worker claims a delivery with a lease (``lease_until`` and a
``lease_token``); the result is written only under that token, and a lease that runs out (a
worker that died mid-request) makes the delivery due again.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base, enum_column


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"  # never tried
    DELIVERING = "delivering"  # claimed by a worker until lease_until
    DELIVERED = "delivered"  # the endpoint answered 2xx: final
    FAILED = "failed"  # the last attempt failed; the next is due at next_attempt_at
    DEAD = "dead"  # out of attempts: final until someone redelivers it by hand


# a delivery in one of these states is due once next_attempt_at has passed (for DELIVERING,
# next_attempt_at is the end of the lease)
DUE_STATUSES = ("pending", "failed", "delivering")
_DUE = text("status IN ('pending', 'failed', 'delivering')")


class WebhookEndpoint(Base):
    """A URL of the shop's that receives the event types it subscribed to.

    The signing secret must be recoverable to sign each request, so it is stored encrypted
    (AES-GCM with the PII key, field ``webhook_secret``), never hashed and never in clear.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(200), default="")
    secret_enc: Mapped[bytes] = mapped_column()
    events: Mapped[list[str]] = mapped_column(JSON, default=list)  # e.g. ["ticket.created"]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    disabled_at: Mapped[datetime | None] = mapped_column()


class WebhookEvent(Base):
    """One thing that happened, as the shop will see it; ``uid`` is the ``Kefu-Event-Id``.

    ``source`` names the row that caused it (``ticket_event:12``, ``refund:7``, ``survey:3``);
    unique with ``type`` so one change can never become two events.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("type", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column()
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WebhookDelivery(Base):
    """One event owed to one endpoint: the unit the workers claim, retry and finish."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        # what is due: the only query the workers run in a loop
        Index("ix_webhook_deliveries_due", "next_attempt_at",
              postgresql_where=_DUE, sqlite_where=_DUE),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column()
    lease_token: Mapped[str | None] = mapped_column(String(32))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()


class WebhookAttempt(Base):
    """The delivery log: one row per HTTP attempt, including one a worker never finished.

    ``outcome`` is ``delivered``, ``retry`` (failed, another attempt scheduled), ``dead`` (failed,
    no attempts left) or ``lost`` (the worker's lease ran out before it recorded a result).
    """

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
