"""Small builders for test data: each returns a flushed model with sensible defaults."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ticketing.core.clock import utcnow
from ticketing.core.models import (
    Agent,
    Availability,
    Customer,
    Order,
    OrderItem,
    OrderState,
    Product,
    Role,
    Segment,
    Shipment,
    Team,
    TrackingEvent,
)
from ticketing.core.pii import PiiCipher

_seq = itertools.count(1)


class Factory:
    def __init__(self, session: Session, cipher: PiiCipher) -> None:
        self.session = session
        self.cipher = cipher

    def _add(self, obj: object) -> object:
        self.session.add(obj)
        self.session.flush()
        return obj

    def customer(
        self,
        *,
        name: str = "张伟",
        segment: Segment = Segment.REGULAR,
        phone: str | None = None,
        language: str = "zh",
        address: str = "上海市浦东新区世纪大道100号",
    ) -> Customer:
        n = next(_seq)
        phone = phone or f"138{n:08d}"
        c = Customer(
            name=name,
            segment=segment,
            language=language,
            phone_enc=self.cipher.encrypt(phone, field="phone"),
            phone_lookup=self.cipher.lookup_hash(phone),
            address_enc=self.cipher.encrypt(address, field="address"),
        )
        return self._add(c)  # type: ignore[return-value]

    def product(
        self,
        *,
        name_zh: str = "无线蓝牙耳机",
        name_en: str = "Wireless Bluetooth Earbuds",
        price_cents: int = 19900,
        stock: int = 50,
        no_reason_return_7d: bool = True,
        aliases: list[str] | None = None,
        category: str = "electronics",
    ) -> Product:
        n = next(_seq)
        p = Product(
            sku=f"SKU{n:06d}",
            name_zh=name_zh,
            name_en=name_en,
            aliases=aliases or [],
            category=category,
            specs={"zh": {"颜色": "白色"}, "en": {"colour": "white"}},
            price_cents=price_cents,
            stock=stock,
            no_reason_return_7d=no_reason_return_7d,
            delivery_zh="顺丰包邮，48小时内发货",
            delivery_en="Free SF Express shipping, dispatched within 48 hours",
        )
        return self._add(p)  # type: ignore[return-value]

    def order(
        self,
        *,
        customer: Customer,
        state: OrderState = OrderState.PAID,
        product: Product | None = None,
        quantity: int = 1,
        created_at: datetime | None = None,
        delivered_at: datetime | None = None,
        number: str | None = None,
    ) -> Order:
        product = product or self.product()
        now = utcnow()
        created_at = created_at or now - timedelta(days=3)
        total = product.price_cents * quantity
        paid = 0 if state is OrderState.PENDING_PAYMENT else total
        n = next(_seq)
        o = Order(
            number=number or f"{2026112500000000 + n:d}",
            customer_id=customer.id,
            state=state,
            total_cents=total,
            paid_cents=paid,
            refunded_cents=0,
            payment_method=None if paid == 0 else "alipay",
            created_at=created_at,
            paid_at=None if paid == 0 else created_at + timedelta(minutes=5),
        )
        if state in (OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED):
            o.shipped_at = created_at + timedelta(days=1)
        if state in (OrderState.DELIVERED, OrderState.COMPLETED):
            o.delivered_at = delivered_at or created_at + timedelta(days=2)
        if state is OrderState.COMPLETED:
            o.completed_at = (o.delivered_at or now) + timedelta(days=7)
        if state is OrderState.CANCELLED:
            o.cancelled_at = created_at + timedelta(hours=1)
        self._add(o)
        self._add(
            OrderItem(order_id=o.id, product_id=product.id, quantity=quantity,
                      unit_price_cents=product.price_cents)
        )
        return o

    def shipment(
        self,
        *,
        order: Order,
        shipped_at: datetime | None = None,
        promised_days: int = 3,
        delivered: bool = False,
    ) -> Shipment:
        shipped_at = shipped_at or order.shipped_at or utcnow() - timedelta(days=1)
        n = next(_seq)
        s = Shipment(
            order_id=order.id,
            carrier="SF",
            tracking_number=f"SF{n:012d}",
            shipped_at=shipped_at,
            promised_by=shipped_at + timedelta(days=promised_days),
            delivered_at=shipped_at + timedelta(days=2) if delivered else None,
        )
        self._add(s)
        self._add(
            TrackingEvent(
                shipment_id=s.id, at=shipped_at, status="picked_up",
                location_zh="深圳", location_en="Shenzhen",
                description_zh="快递员已揽收", description_en="Picked up by the courier",
            )
        )
        return s

    def team(self, *, code: str = "frontline", tier: int = 1,
             categories: list[str] | None = None) -> Team:
        t = Team(code=code, name_zh=code, name_en=code, tier=tier,
                 categories=categories if categories is not None else ["*"])
        return self._add(t)  # type: ignore[return-value]

    def agent(
        self,
        *,
        team: Team | None = None,
        role: Role = Role.AGENT,
        name: str | None = None,
        availability: Availability = Availability.ONLINE,
    ) -> Agent:
        n = next(_seq)
        name = name or f"Agent{n}"
        a = Agent(
            login=f"{name.lower()}{n}",
            display_name=name,
            first_name=name,
            role=role,
            team_id=team.id if team else None,
            availability=availability,
        )
        self._add(a)
        if team is not None:
            self.session.refresh(a)
        return a
