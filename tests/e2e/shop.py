"""The shop each end-to-end scenario talks to: a fresh customer with the orders it needs, in the
live stack's database, and the database reads a scenario checks afterwards.

Why fresh customers rather than the demo shop's 32: a signed-in conversation is
``widget:c-<customer id>``, so two scenarios with the same customer would share a Rasa tracker,
a handed-off ticket and the "repeated contact" history, and one scenario's outcome would
depend on which ran before it. Each scenario gets its own customer, whose orders are built
here in exactly the state the scenario is about (a parcel out for delivery *and* on time, a
refund under review...), which the seeded demo shop has only by chance. The products are the
demo catalogue's (seeded by ``LiveAssistant.seed()``: ``ticketing/demo/catalog.py``), and
another customer's order, for the "never leaks" scenarios, is a real demo order.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.clock import utcnow
from ticketing.core.db import make_engine, make_session_factory
from ticketing.core.models import (
    Customer, Order, OrderItem, OrderState, Product, RefundKind, RefundMethod, RefundRequest,
    RefundState, RestockSubscription, Segment, Shipment, Survey, Ticket, TrackingEvent,
)
from ticketing.core.money import format_amount
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import load_settings
from ticketing.shop import customers as customer_service

H = timedelta(hours=1)
D = timedelta(days=1)
_numbers = itertools.count(1)
# 18-digit order numbers and 11-digit phones no demo row has (the demo's are random; these
# start from the run's clock, so two runs against one database do not collide either)
_RUN = int(time.time() * 1000) % 10**9


class OrderRef(str):
    """An order number as scenario text uses it: ``{a}`` is the number, ``{a.tail}`` its last
    four digits, ``{a.total}`` the amount paid as shown (``¥299.00``), ``{a.item}`` /
    ``{a.item_en}`` the first product's name."""

    id: int
    tail: str
    total: str
    item: str
    item_en: str

    @classmethod
    def of(cls, order: Order, product: Product) -> OrderRef:
        ref = cls(order.number)
        ref.id, ref.tail = order.id, order.number[-4:]
        ref.total = format_amount(order.total_cents)
        ref.item, ref.item_en = product.name_zh, product.name_en
        return ref


@dataclass(frozen=True)
class OrderSpec:
    """One order of a scenario's customer.

    ``state``: an ``OrderState`` value. ``parcel`` (shipped orders): ``in_transit`` (on time,
    the default), ``out_for_delivery`` (on time), ``late`` (past the promise) or ``exception``
    (the carrier reported a problem). ``refund``: a ``RefundState`` value for a
    return-and-refund already under way (delivered orders).
    """

    state: str
    product: str = "无线蓝牙耳机 Pro"
    quantity: int = 1
    parcel: str = "in_transit"
    refund: str | None = None


@dataclass
class Visitor:
    """Who a scenario is: a fresh signed-in customer (``customer_id``) or an anonymous visitor."""

    customer_id: int | None
    language: str
    orders: dict[str, OrderRef] = field(default_factory=dict)


class Shop:
    """The live stack's database, as the shop's back office and a test's eyes see it."""

    def __init__(self, env: dict[str, str], database_url: str) -> None:
        self.cipher = PiiCipher(load_settings(env).pii_key)  # the stack's own key
        self.engine = make_engine(database_url)
        self.factory: sessionmaker[Session] = make_session_factory(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- arranging -------------------------------------------------------------------------
    def visitor(self, *, language: str, anonymous: bool = False, segment: str = "regular",
                orders: dict[str, OrderSpec] | None = None) -> Visitor:
        """A new customer with ``orders`` (keyed by the names scenario text uses), or nobody."""
        if anonymous:
            return Visitor(None, language)
        now = utcnow()
        n = next(_numbers)
        with self.factory.begin() as session:
            customer = customer_service.create_customer(
                session, cipher=self.cipher, language=language, segment=Segment(segment),
                name="林小雨" if language == "zh" else "Alice Walker",
                phone=f"16{_RUN:09d}"[:7] + f"{n:04d}",
                address="上海市浦东新区世纪大道100号3栋1201室", now=now - 90 * D)
            refs = {key: self._order(session, customer, spec, now, age=i)
                    for i, (key, spec) in enumerate((orders or {}).items())}
            return Visitor(customer.id, language, refs)

    def _order(self, session: Session, customer: Customer, spec: OrderSpec, now: datetime,
               *, age: int) -> OrderRef:
        product = session.scalars(select(Product).where(Product.name_zh == spec.product)).one()
        state = OrderState(spec.state)
        total = product.price_cents * spec.quantity
        paid = state is not OrderState.PENDING_PAYMENT and state is not OrderState.CANCELLED
        # the first order of a scenario is the newest (it comes first in "which order?" buttons)
        created = now - {OrderState.PENDING_PAYMENT: 2 * H, OrderState.PAID: 10 * H,
                         OrderState.SHIPPED: 2 * D, OrderState.DELIVERED: 4 * D,
                         OrderState.COMPLETED: 30 * D, OrderState.CANCELLED: 3 * D}[state] \
            - age * H
        order = Order(number=f"8{_RUN:09d}{next(_numbers):08d}", customer_id=customer.id,
                      state=state, total_cents=total, paid_cents=total if paid else 0,
                      refunded_cents=0, payment_method="alipay" if paid else None,
                      address_enc=self.cipher.encrypt("上海市浦东新区世纪大道100号3栋1201室",
                                                      field="address"),
                      created_at=created, paid_at=created + 5 * timedelta(minutes=1) if paid else None)
        if state is OrderState.CANCELLED:
            order.cancelled_at = created + H
        session.add(order)
        session.flush()
        session.add(OrderItem(order_id=order.id, product_id=product.id, quantity=spec.quantity,
                              unit_price_cents=product.price_cents))
        if state in (OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED):
            self._ship(session, order, spec, now)
        if spec.refund:
            session.add(RefundRequest(
                order_id=order.id, customer_id=customer.id, idempotency_key=f"e2e-{order.number}",
                kind=RefundKind.RETURN_AND_REFUND, state=RefundState(spec.refund),
                reason="quality", amount_cents=total, method=RefundMethod.ORIGINAL,
                created_at=now - 5 * H))
        session.flush()
        return OrderRef.of(order, product)

    @staticmethod
    def _ship(session: Session, order: Order, spec: OrderSpec, now: datetime) -> None:
        state = order.state
        if state is OrderState.SHIPPED and spec.parcel == "late":
            shipped, promised = now - 100 * H, now - 20 * H
        elif state is OrderState.SHIPPED:
            shipped, promised = now - 30 * H, now + 30 * H
        elif state is OrderState.DELIVERED:
            shipped, promised = now - 3 * D, now - D
        else:  # completed
            shipped, promised = now - 28 * D, now - 26 * D
        delivered = None if state is OrderState.SHIPPED else promised - 5 * H
        order.shipped_at, order.delivered_at = shipped, delivered
        if state is OrderState.COMPLETED:
            order.completed_at = delivered + 7 * D if delivered else None
        shipment = Shipment(order_id=order.id, carrier="SF",
                            tracking_number=f"SF{order.number[-12:]}", shipped_at=shipped,
                            promised_by=promised, delivered_at=delivered)
        session.add(shipment)
        session.flush()
        scans = [("picked_up", shipped + H, "深圳", "Shenzhen", "【深圳】快递员已揽收",
                  "Picked up by the courier in Shenzhen"),
                 ("in_transit", min(shipped + 10 * H, now - 6 * H), "上海转运中心",
                  "Shanghai sorting centre", "已到达【上海转运中心】",
                  "Arrived at the Shanghai sorting centre")]
        if spec.parcel == "out_for_delivery" or state is not OrderState.SHIPPED:
            scans.append(("out_for_delivery", (delivered or now) - H, "上海", "Shanghai",
                          "【上海】快递员正在派送，请保持电话畅通",
                          "Out for delivery in Shanghai; please keep your phone on"))
        if delivered is not None:
            scans.append(("delivered", delivered, "上海", "Shanghai", "已签收，签收人：本人",
                          "Delivered and signed for"))
        if spec.parcel == "exception":
            scans.append(("exception", now - 2 * H, "上海转运中心", "Shanghai sorting centre",
                          "包裹外包装破损，待核实", "Parcel packaging damaged, being checked"))
        session.add_all(TrackingEvent(shipment_id=shipment.id, at=at, status=status,
                                      location_zh=lz, location_en=le, description_zh=dz,
                                      description_en=de)
                        for status, at, lz, le, dz, de in scans)

    def foreign_order(self) -> OrderRef:
        """A demo customer's shipped order: somebody else's, as far as a scenario knows."""
        with self.factory() as session:
            order = session.scalars(select(Order).where(
                Order.state == OrderState.SHIPPED, Order.number.not_like("8%"))
                .order_by(Order.id).limit(1)).one()
            item = session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)).first()
            return OrderRef.of(order, session.get(Product, item.product_id))

    # --- reading back ----------------------------------------------------------------------
    def tickets(self, conversation_id: str) -> list[Ticket]:
        """Every ticket of the conversation, oldest first (detached, read-only)."""
        with self.factory() as session:
            rows = list(session.scalars(select(Ticket).where(
                Ticket.conversation_id == conversation_id).order_by(Ticket.id)))
            session.expunge_all()
            return rows

    def refunds(self, order_id: int) -> list[RefundRequest]:
        with self.factory() as session:
            rows = list(session.scalars(select(RefundRequest).where(
                RefundRequest.order_id == order_id).order_by(RefundRequest.id)))
            session.expunge_all()
            return rows

    def order(self, order_id: int) -> tuple[OrderState, bytes | None, str | None]:
        """(state, the stored address ciphertext, the address decrypted)."""
        with self.factory() as session:
            order = session.get(Order, order_id)
            assert order is not None
            clear = None if order.address_enc is None else self.cipher.decrypt(
                order.address_enc, field="address")
            return order.state, order.address_enc, clear

    def restock_wishes(self, customer_id: int) -> list[str]:
        """The products (Chinese names) the customer waits for."""
        with self.factory() as session:
            return list(session.scalars(
                select(Product.name_zh).join(RestockSubscription,
                                             RestockSubscription.product_id == Product.id)
                .where(RestockSubscription.customer_id == customer_id,
                       RestockSubscription.notified_at.is_(None))))

    def survey(self, ticket_id: int) -> dict[str, Any] | None:
        with self.factory() as session:
            survey = session.scalars(select(Survey).where(Survey.ticket_id == ticket_id)).first()
            if survey is None:
                return None
            return {"score": survey.score, "comment": survey.comment}
