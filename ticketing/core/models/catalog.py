"""Products as the shop sells them, named in Chinese and English, and customers waiting for
one to be back in stock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.core.clock import utcnow
from ticketing.core.models.base import Base


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)  # nicknames customers use
    category: Mapped[str] = mapped_column(String(40))
    specs: Mapped[dict[str, dict[str, str]]] = mapped_column(JSON, default=dict)  # {"zh":{..},"en":{..}}
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=5)
    no_reason_return_7d: Mapped[bool] = mapped_column(Boolean, default=True)
    delivery_zh: Mapped[str] = mapped_column(String(200), default="")
    delivery_en: Mapped[str] = mapped_column(String(200), default="")
    # the shop's own id and the time of the shop's version we hold (ticketing.shop.ingest)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source_updated_at: Mapped[datetime | None] = mapped_column()


class RestockSubscription(Base):
    """A customer asked to be told when a product is back; ``notified_at`` marks it used.

    At most one waiting subscription per customer and product (partial unique index), so asking
    twice is one notice.
    """

    __tablename__ = "restock_subscriptions"
    __table_args__ = (
        Index(
            "uq_restock_subscriptions_waiting",
            "customer_id",
            "product_id",
            unique=True,
            sqlite_where=text("notified_at IS NULL"),
            postgresql_where=text("notified_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column()
