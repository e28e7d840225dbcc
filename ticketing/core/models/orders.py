"""Orders (rules §ORD-1), their shipments and tracking, and refund requests (rules §REF-1).

Money is integer cents (fen) so amounts are exact on every backend.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base, enum_column


class OrderState(str, enum.Enum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(19), unique=True)  # 16–19 digits
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    state: Mapped[OrderState] = mapped_column(enum_column(OrderState))
    total_cents: Mapped[int] = mapped_column(Integer)
    paid_cents: Mapped[int] = mapped_column(Integer, default=0)
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0)
    payment_method: Mapped[str | None] = mapped_column(String(32))  # alipay, wechat, card
    address_enc: Mapped[bytes | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    paid_at: Mapped[datetime | None] = mapped_column()
    shipped_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    # the time of the shop's version we hold; ``number`` is the shop's own key
    source_updated_at: Mapped[datetime | None] = mapped_column()

    items: Mapped[list[OrderItem]] = relationship(back_populates="order", order_by="OrderItem.id")
    shipments: Mapped[list[Shipment]] = relationship(back_populates="order", order_by="Shipment.id")
    refunds: Mapped[list[RefundRequest]] = relationship(
        back_populates="order", order_by="RefundRequest.id"
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="items")


class Shipment(Base):
    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    carrier: Mapped[str] = mapped_column(String(40))  # SF, ZTO, YTO, JD, ...
    tracking_number: Mapped[str] = mapped_column(String(40), unique=True)
    shipped_at: Mapped[datetime] = mapped_column()
    promised_by: Mapped[datetime] = mapped_column()  # ETA promised at shipping time
    delivered_at: Mapped[datetime | None] = mapped_column()
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source_updated_at: Mapped[datetime | None] = mapped_column()

    order: Mapped[Order] = relationship(back_populates="shipments")
    events: Mapped[list[TrackingEvent]] = relationship(
        back_populates="shipment", order_by="TrackingEvent.at"
    )


class TrackingEvent(Base):
    __tablename__ = "tracking_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(24))  # picked_up, in_transit, out_for_delivery, delivered, exception
    location_zh: Mapped[str] = mapped_column(String(80))
    location_en: Mapped[str] = mapped_column(String(80))
    description_zh: Mapped[str] = mapped_column(String(200))
    description_en: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)

    shipment: Mapped[Shipment] = relationship(back_populates="events")


class RefundState(str, enum.Enum):
    APPLIED = "applied"
    UNDER_REVIEW = "under_review"
    PROCESSING = "processing"
    DONE = "done"
    REJECTED = "rejected"


class RefundKind(str, enum.Enum):
    CANCEL_AND_REFUND = "cancel_and_refund"  # unshipped
    RETURN_AND_REFUND = "return_and_refund"  # shipped/delivered, 7-day rule


class RefundMethod(str, enum.Enum):
    ORIGINAL = "original"  # back to the original payment method
    BALANCE = "balance"  # shop balance


ACTIVE_REFUND_STATES = ("applied", "under_review", "processing")


class RefundRequest(Base):
    """One refund. At most one active request per order (partial unique index)."""

    __tablename__ = "refund_requests"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index(
            "uq_refund_requests_one_active_per_order",
            "order_id",
            unique=True,
            sqlite_where=text("state IN ('applied','under_review','processing')"),
            postgresql_where=text("state IN ('applied','under_review','processing')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[RefundKind] = mapped_column(enum_column(RefundKind))
    state: Mapped[RefundState] = mapped_column(enum_column(RefundState))
    reason: Mapped[str] = mapped_column(String(40))  # reason code, see ticketing.shop.refunds.flow
    reason_text: Mapped[str] = mapped_column(Text, default="")
    amount_cents: Mapped[int] = mapped_column(Integer)
    method: Mapped[RefundMethod] = mapped_column(enum_column(RefundMethod))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column()
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    done_at: Mapped[datetime | None] = mapped_column()
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source_updated_at: Mapped[datetime | None] = mapped_column()

    order: Mapped[Order] = relationship(back_populates="refunds")
