"""Where is my parcel: latest tracking, expected delivery, and when a shipment counts as delayed.

A shipment is delayed when it is not delivered and (a) its promised date has passed, (b) the
carrier has reported nothing for more than 48 hours, or (c) the carrier reported an exception.
Delayed shipments are what the bot hands to the logistics team instead of reassuring.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketing.core.clock import utcnow
from ticketing.core.local_time import short_moment
from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import (
    ACTIVE_REFUND_STATES,
    Order,
    OrderState,
    Shipment,
    TrackingEvent,
)
from ticketing.core.settings import schedule_of

STALL_AFTER = timedelta(hours=48)
MIN_REMAINING = timedelta(hours=6)

# share of the promised transit time already behind a parcel in this status
_PROGRESS = {"picked_up": 0.1, "in_transit": 0.5, "out_for_delivery": 0.9}

CARRIERS: dict[str, Text] = {
    "SF": Text("顺丰速运", "SF Express"),
    "ZTO": Text("中通快递", "ZTO Express"),
    "YTO": Text("圆通速递", "YTO Express"),
    "JD": Text("京东物流", "JD Logistics"),
    "EMS": Text("中国邮政EMS", "China Post EMS"),
    "STO": Text("申通快递", "STO Express"),
    "YD": Text("韵达快递", "Yunda Express"),
}


class DelayReason(str, enum.Enum):
    LATE = "late"  # promised date passed
    STALLED = "stalled"  # no tracking update for more than 48h
    EXCEPTION = "exception"  # carrier reported a problem


@dataclass(frozen=True)
class TrackingSummary:
    """Everything the bot says about a parcel, already worded in the customer's language."""

    order_number: str
    carrier: str | None
    carrier_name: str | None
    tracking_number: str | None
    status: str | None  # latest tracking status, None before shipping
    last_update_at: datetime | None
    eta: datetime | None
    delivered: bool
    delay: DelayReason | None
    text: str

    @property
    def delayed(self) -> bool:
        return self.delay is not None


def current_shipment(session: Session, *, order: Order) -> Shipment | None:
    """The order's most recent shipment (re-shipments replace earlier parcels)."""
    return session.scalars(
        select(Shipment)
        .where(Shipment.order_id == order.id)
        .order_by(Shipment.shipped_at.desc(), Shipment.id.desc())
        .limit(1)
    ).first()


def _latest_event_of(session: Session, shipment: Shipment) -> TrackingEvent | None:
    return session.scalars(
        select(TrackingEvent)
        .where(TrackingEvent.shipment_id == shipment.id)
        .order_by(TrackingEvent.at.desc(), TrackingEvent.id.desc())
        .limit(1)
    ).first()


def latest_event(session: Session, *, order: Order) -> TrackingEvent | None:
    """The newest tracking event of the order's current shipment, if any."""
    shipment = current_shipment(session, order=order)
    return None if shipment is None else _latest_event_of(session, shipment)


def _is_delivered(order: Order, shipment: Shipment, event: TrackingEvent | None) -> bool:
    return (
        shipment.delivered_at is not None
        or (event is not None and event.status == "delivered")
        or order.state in (OrderState.DELIVERED, OrderState.COMPLETED)
    )


def _delivered_at(order: Order, shipment: Shipment, event: TrackingEvent | None) -> datetime | None:
    if shipment.delivered_at is not None:
        return shipment.delivered_at
    if event is not None and event.status == "delivered":
        return event.at
    return order.delivered_at


def _delay(
    shipment: Shipment, event: TrackingEvent | None, *, delivered: bool, now: datetime
) -> DelayReason | None:
    if delivered:
        return None
    if event is not None and event.status == "exception":
        return DelayReason.EXCEPTION
    if now > shipment.promised_by:
        return DelayReason.LATE
    last_heard = event.at if event is not None else shipment.shipped_at
    if now - last_heard > STALL_AFTER:
        return DelayReason.STALLED
    return None


def _eta(
    shipment: Shipment, event: TrackingEvent | None, *, delivered_at: datetime | None,
    now: datetime,
) -> datetime | None:
    """Delivered time; else the promise while it holds; else extrapolated from progress."""
    if delivered_at is not None:
        return delivered_at
    if event is not None and event.status == "exception":
        return None  # nobody can say until the carrier resolves it
    if shipment.promised_by >= now:
        return shipment.promised_by
    transit = max(shipment.promised_by - shipment.shipped_at, MIN_REMAINING)
    progress = _PROGRESS.get(event.status if event is not None else "picked_up", 0.1)
    return now + max(transit * (1 - progress), MIN_REMAINING)


def eta(session: Session, *, order: Order, now: datetime | None = None) -> datetime | None:
    """When the parcel arrives(d): None before shipping or while the carrier reports a problem."""
    now = now or utcnow()
    shipment = current_shipment(session, order=order)
    if shipment is None:
        return None
    event = _latest_event_of(session, shipment)
    delivered_at = (
        _delivered_at(order, shipment, event) if _is_delivered(order, shipment, event) else None
    )
    return _eta(shipment, event, delivered_at=delivered_at, now=now)


def delay_reason(
    session: Session, *, order: Order, now: datetime | None = None
) -> DelayReason | None:
    """Why the order's parcel is delayed, or None when it is on time (or not shipped)."""
    now = now or utcnow()
    shipment = current_shipment(session, order=order)
    if shipment is None:
        return None
    event = _latest_event_of(session, shipment)
    return _delay(shipment, event, delivered=_is_delivered(order, shipment, event), now=now)


def is_delayed(session: Session, *, order: Order, now: datetime | None = None) -> bool:
    return delay_reason(session, order=order, now=now) is not None


# --- wording ---------------------------------------------------------------------------------
_NOT_SHIPPED = {
    OrderState.PENDING_PAYMENT: Text(
        "订单 {number} 还未付款，付款后才会安排发货。",
        "Order {number} is not paid yet; it ships after payment.",
    ),
    OrderState.PAID: Text(
        "订单 {number} 已付款，商家正在备货，还没有发货。发货后会有快递单号。",
        "Order {number} is paid and being prepared; it has not shipped yet. You will get a "
        "tracking number when it does.",
    ),
    OrderState.CANCELLED: Text(
        "订单 {number} 已取消，没有物流信息。",
        "Order {number} was cancelled, so there is no shipment.",
    ),
}
_NO_SHIPMENT = Text(
    "订单 {number} 暂时没有物流信息。", "There is no tracking information for order {number} yet."
)
# the order's state as a customer says it comes first, then the carrier and the latest scan
_STATUS = Text("订单 {number}：{status}。", "Order {number} is {status}.")
_PARCEL_STATUS = {
    None: Text("已发货", "shipped"),
    "picked_up": Text("已发货，快递已揽收", "shipped and picked up by the carrier"),
    "in_transit": Text("已发货，运输中", "shipped and in transit"),
    "out_for_delivery": Text("正在派送中", "out for delivery"),
    "delivered": Text("已送达签收", "delivered and signed for"),
    "exception": Text("已发货，但运输出现异常", "shipped but held up by a delivery problem"),
}
_COMPLETED = Text("已签收，订单已完成", "delivered and completed")
_REFUNDING = Text("（退款处理中）", " (a refund is in progress)")
_HEAD = Text("由{carrier}承运，运单号 {tracking}。",
             "It travels with {carrier}, tracking number {tracking}.")
_LATEST = Text("最新动态（{at}，{location}）：{description}。",
               "Latest update ({at}, {location}): {description}.")
_NO_EVENTS = Text("快递公司还没有返回轨迹信息。", "The carrier has not reported any scans yet.")
_DELIVERED = Text("包裹已于 {at} 送达。", "The parcel was delivered on {at}.")
_ETA = Text("预计 {at} 前送达。", "Expected delivery by {at}.")
_ETA_LATE = Text("比承诺时间晚了，重新预估约 {at} 送达，非常抱歉。",
                 "It is later than promised; our new estimate is {at}. We are sorry.")
_DELAY_TEXT = {
    DelayReason.LATE: Text(
        "包裹已超过承诺送达时间，我们会联系快递公司催件。",
        "The parcel is past its promised delivery date; we will chase the carrier.",
    ),
    DelayReason.STALLED: Text(
        "物流已超过48小时没有更新，我们会联系快递公司核实。",
        "Tracking has not updated for over 48 hours; we will check with the carrier.",
    ),
    DelayReason.EXCEPTION: Text(
        "快递公司报告了异常，暂时无法预估送达时间，我们会跟进处理并通知您。",
        "The carrier reported a problem, so we cannot estimate delivery yet; we will follow "
        "it up and keep you posted.",
    ),
}


def _status_line(order: Order, event: TrackingEvent | None, delivered: bool,
                 language: str) -> str:
    """"Order 123 is in transit." — the state in a customer's words, a refund in progress
    named with it."""
    if order.state is OrderState.COMPLETED:
        status = _COMPLETED
    elif delivered:
        status = _PARCEL_STATUS["delivered"]
    else:
        status = _PARCEL_STATUS.get(event.status if event is not None else None,
                                    _PARCEL_STATUS[None])
    words = status.get(language)
    if any(r.state.value in ACTIVE_REFUND_STATES for r in order.refunds):
        words += _REFUNDING.get(language)
    return _STATUS.get(language, number=order.number, status=words)


def carrier_name(code: str, *, language: str) -> str:
    known = CARRIERS.get(code.upper())
    return known.get(language) if known else code


def summary(
    session: Session, *, order: Order, language: str, now: datetime | None = None,
    timezone: str | None = None,
) -> TrackingSummary:
    """The parcel's story in one message: carrier, latest scan, ETA or delay; times in the
    shop's ``timezone`` (default: the session's schedule)."""
    now = now or utcnow()
    timezone = timezone or schedule_of(session).timezone
    shipment = current_shipment(session, order=order)
    if shipment is None:
        template = _NOT_SHIPPED.get(order.state, _NO_SHIPMENT)
        return TrackingSummary(
            order_number=order.number, carrier=None, carrier_name=None, tracking_number=None,
            status=None, last_update_at=None, eta=None, delivered=False, delay=None,
            text=template.get(language, number=order.number),
        )
    event = _latest_event_of(session, shipment)
    delivered = _is_delivered(order, shipment, event)
    delivered_at = _delivered_at(order, shipment, event) if delivered else None
    delay = _delay(shipment, event, delivered=delivered, now=now)
    expected = _eta(shipment, event, delivered_at=delivered_at, now=now)
    name = carrier_name(shipment.carrier, language=language)
    zh = normalize_language(language) == "zh"

    parts = [_status_line(order, event, delivered, language),
             _HEAD.get(language, carrier=name, tracking=shipment.tracking_number)]
    if event is None:
        parts.append(_NO_EVENTS.get(language))
    else:
        parts.append(_LATEST.get(
            language, at=short_moment(event.at, language=language, timezone=timezone),
            location=event.location_zh if zh else event.location_en,
            description=event.description_zh if zh else event.description_en,
        ))
    if delivered:
        if delivered_at is not None:
            parts.append(_DELIVERED.get(language, at=short_moment(delivered_at, language=language, timezone=timezone)))
    else:
        if delay is not None:
            parts.append(_DELAY_TEXT[delay].get(language))
        if expected is not None:
            late = expected > shipment.promised_by
            parts.append((_ETA_LATE if late else _ETA).get(
                language, at=short_moment(expected, language=language, timezone=timezone)))
    return TrackingSummary(
        order_number=order.number,
        carrier=shipment.carrier,
        carrier_name=name,
        tracking_number=shipment.tracking_number,
        status=event.status if event is not None else None,
        last_update_at=event.at if event is not None else None,
        eta=expected,
        delivered=delivered,
        delay=delay,
        text=("" if zh else " ").join(parts),
    )
