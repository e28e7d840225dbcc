"""Customers and the channel identities (Telegram user, widget visitor) that reach them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base, enum_column


class Segment(str, enum.Enum):
    VIP = "vip"
    REGULAR = "regular"
    POTENTIAL = "potential"


class Customer(Base):
    """A shop customer. Phone and address are AES-256-GCM ciphertext (see ticketing.core.pii)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    language: Mapped[str] = mapped_column(String(8), default="zh")
    segment: Mapped[Segment] = mapped_column(enum_column(Segment), default=Segment.REGULAR)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # keyed hash of the normalised phone, so a shared Telegram contact can be matched
    # without decrypting every row
    phone_lookup: Mapped[str | None] = mapped_column(String(64), index=True)
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the shop's own id and the time of the shop's version we hold (ticketing.shop.ingest)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source_updated_at: Mapped[datetime | None] = mapped_column()
    # the customer asked for no shipping notices (shipped, delivered, parcel problems)
    shipping_notices_opt_out: Mapped[bool] = mapped_column(Boolean, default=False,
                                                           server_default=false())

    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="customer")


class ChannelIdentity(Base):
    """Who is talking on a channel; ``conversation_id`` is the Rasa sender id."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # "telegram" | "widget" | ...
    external_id: Mapped[str] = mapped_column(String(128))
    conversation_id: Mapped[str] = mapped_column(String(160), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    handed_off_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    verified_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer | None] = relationship(back_populates="identities")
