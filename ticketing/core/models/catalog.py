"""Products as the shop sells them, named in Chinese and English."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

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
