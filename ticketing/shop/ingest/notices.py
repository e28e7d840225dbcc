"""Telling a customer what changed with their order, once per event, in their language.

The shop's data arriving is what tells Kefu a parcel shipped, arrived or got stuck, or that a
refund was paid; the customer hears it on the channel they last used (the refund notices'
``customer_channel``), through the outbox. Each event has a key (``order:12:delivered``) kept
in ``customer_notices``: a resent batch, a second path to the same fact (the order row and the
shipment row both saying "delivered") or two batches racing tell the customer once. Shipping
notices respect the customer's opt-out; refund results are always told (rules §REF-2).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.conversations import outbox
from ticketing.core.i18n import Text
from ticketing.core.models import Customer, CustomerNotice, OutboxMessage
from ticketing.shop.logistics import carrier_name
from ticketing.shop.refunds.notices import customer_channel

SHIPPING = "shipping_update"
REFUND = "refund_update"  # the kind the refund flow's own notices use
RESTOCK = "restock"

SHIPPED = Text(
    "您的订单 {number} 已发货，由{carrier}承运，运单号 {tracking}。想知道包裹到哪儿了，随时问我。",
    "Your order {number} has shipped with {carrier}, tracking number {tracking}. Ask me any "
    "time where it is.",
)
DELIVERED = Text(
    "您的订单 {number} 已签收。请检查商品，如有任何问题，直接告诉我们。",
    "Your order {number} has been delivered. Please check the goods; if anything is wrong, "
    "just tell us.",
)
PROBLEM = Text(
    "您的订单 {number} 的包裹出现异常：{what}。我们正在跟进，有进展会第一时间通知您。",
    "There is a problem with the parcel of order {number}: {what}. We are following it up "
    "and will let you know as soon as there is news.",
)
PROBLEM_UNSPECIFIED = Text("快递公司报告了异常", "the carrier reported a problem")


def tell_once(
    session: Session, *, customer_id: int, event_key: str, kind: str,
    render: Callable[[str], str], payload: dict[str, object], now: datetime,
    shipping: bool = False,
) -> OutboxMessage | None:
    """Queue ``render(language)`` for the customer unless this event was told already (or it
    is a shipping notice and the customer opted out). Returns the message, or None."""
    customer = session.get(Customer, customer_id)
    if customer is None or (shipping and customer.shipping_notices_opt_out):
        return None
    if session.scalar(select(CustomerNotice.id).where(CustomerNotice.event_key == event_key)):
        return None
    language, conversation_id = customer_channel(session, customer_id=customer_id)
    message = outbox.enqueue(session, customer_id=customer_id, conversation_id=conversation_id,
                             kind=kind, text=render(language), language=language,
                             payload={**payload, "event": event_key}, now=now)
    try:
        with session.begin_nested():
            session.add(CustomerNotice(event_key=event_key, customer_id=customer_id, kind=kind,
                                       outbox_id=message.id, created_at=now))
    except IntegrityError:  # another batch told the same event a moment ago
        session.delete(message)
        session.flush()
        return None
    return message


def shipped(session: Session, *, customer_id: int, order_id: int, number: str, carrier: str,
            tracking_number: str, now: datetime) -> OutboxMessage | None:
    return tell_once(
        session, customer_id=customer_id, event_key=f"order:{order_id}:shipped", kind=SHIPPING,
        render=lambda lang: SHIPPED.get(lang, number=number, tracking=tracking_number,
                                        carrier=carrier_name(carrier, language=lang)),
        payload={"order_number": number, "status": "shipped"}, now=now, shipping=True)


def delivered(session: Session, *, customer_id: int, order_id: int, number: str,
              now: datetime) -> OutboxMessage | None:
    return tell_once(
        session, customer_id=customer_id, event_key=f"order:{order_id}:delivered",
        kind=SHIPPING, render=lambda lang: DELIVERED.get(lang, number=number),
        payload={"order_number": number, "status": "delivered"}, now=now, shipping=True)


def parcel_problem(session: Session, *, customer_id: int, event_id: int, number: str,
                   what: Text | None, now: datetime) -> OutboxMessage | None:
    """A carrier's exception scan; ``what`` is its description in both languages, if any."""
    return tell_once(
        session, customer_id=customer_id, event_key=f"tracking:{event_id}:exception",
        kind=SHIPPING,
        render=lambda lang: PROBLEM.get(
            lang, number=number, what=(what or PROBLEM_UNSPECIFIED).get(lang).rstrip("。.!！")),
        payload={"order_number": number, "status": "exception"}, now=now, shipping=True)
