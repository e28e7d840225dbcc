"""Tracking: latest scan, ETA, and the three ways a parcel counts as delayed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ticketing.shop import logistics
from ticketing.shop.logistics import DelayReason
from ticketing.core.models import OrderState, TrackingEvent

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


def _event(session, shipment, *, at, status="in_transit", zh="已到达【杭州转运中心】",
           en="Arrived at the Hangzhou sorting centre") -> TrackingEvent:
    event = TrackingEvent(shipment_id=shipment.id, at=at, status=status, location_zh="杭州",
                          location_en="Hangzhou", description_zh=zh, description_en=en)
    session.add(event)
    session.flush()
    return event


@pytest.fixture
def shipped(make, session):
    order = make.order(customer=make.customer(), state=OrderState.SHIPPED,
                       created_at=NOW - timedelta(days=2))
    shipment = make.shipment(order=order, shipped_at=NOW - timedelta(days=1), promised_days=3)
    return order, shipment


def test_latest_event_is_newest_scan(shipped, session) -> None:
    order, shipment = shipped
    newest = _event(session, shipment, at=NOW - timedelta(hours=2))
    _event(session, shipment, at=NOW - timedelta(hours=10))
    assert logistics.latest_event(session, order=order) is newest


def test_no_shipment_means_no_event_eta_or_delay(make, session) -> None:
    order = make.order(customer=make.customer(), state=OrderState.PAID)
    assert logistics.latest_event(session, order=order) is None
    assert logistics.eta(session, order=order, now=NOW) is None
    assert not logistics.is_delayed(session, order=order, now=NOW)
    summary = logistics.summary(session, order=order, language="zh", now=NOW)
    assert "还没有发货" in summary.text and summary.tracking_number is None


def test_on_time_parcel_has_promised_eta(shipped, session) -> None:
    order, shipment = shipped
    _event(session, shipment, at=NOW - timedelta(hours=3))
    assert logistics.delay_reason(session, order=order, now=NOW) is None
    assert logistics.eta(session, order=order, now=NOW) == shipment.promised_by


def test_late_when_promise_passed(shipped, session) -> None:
    order, shipment = shipped
    after_promise = shipment.promised_by + timedelta(minutes=1)
    # tracking stays fresh so only the promise rule can fire
    _event(session, shipment, at=after_promise - timedelta(hours=1))
    assert logistics.delay_reason(session, order=order, now=after_promise - timedelta(minutes=2)) is None
    assert logistics.delay_reason(session, order=order, now=after_promise) is DelayReason.LATE
    eta = logistics.eta(session, order=order, now=after_promise)
    assert eta is not None and eta > after_promise  # extrapolated, not the broken promise


def test_stalled_when_no_scan_for_48_hours(make, session) -> None:
    order = make.order(customer=make.customer(), state=OrderState.SHIPPED)
    shipment = make.shipment(order=order, shipped_at=NOW - timedelta(days=3), promised_days=6)
    last = _event(session, shipment, at=NOW - timedelta(hours=47))
    assert logistics.delay_reason(session, order=order, now=NOW) is None
    assert logistics.delay_reason(session, order=order, now=last.at + timedelta(hours=48, minutes=1)) \
        is DelayReason.STALLED


def test_exception_status_is_a_delay_without_eta(shipped, session) -> None:
    order, shipment = shipped
    _event(session, shipment, at=NOW - timedelta(hours=1), status="exception",
           zh="包裹外包装破损", en="Packaging damaged")
    assert logistics.delay_reason(session, order=order, now=NOW) is DelayReason.EXCEPTION
    assert logistics.eta(session, order=order, now=NOW) is None
    summary = logistics.summary(session, order=order, language="en", now=NOW)
    assert summary.delayed and "Packaging damaged" in summary.text and "problem" in summary.text


def test_delivered_parcel_is_never_delayed(make, session) -> None:
    order = make.order(customer=make.customer(), state=OrderState.DELIVERED)
    shipment = make.shipment(order=order, shipped_at=NOW - timedelta(days=10), delivered=True)
    assert not logistics.is_delayed(session, order=order, now=NOW)
    assert logistics.eta(session, order=order, now=NOW) == shipment.delivered_at
    summary = logistics.summary(session, order=order, language="zh", now=NOW)
    assert summary.delivered and "送达" in summary.text


def test_summary_is_bilingual_with_carrier_and_latest_scan(shipped, session) -> None:
    order, shipment = shipped
    _event(session, shipment, at=NOW - timedelta(hours=2))
    zh = logistics.summary(session, order=order, language="zh", now=NOW)
    en = logistics.summary(session, order=order, language="en", now=NOW)
    assert "顺丰速运" in zh.text and shipment.tracking_number in zh.text
    assert "已到达【杭州转运中心】" in zh.text and "预计" in zh.text
    assert "SF Express" in en.text and "Arrived at the Hangzhou sorting centre" in en.text
    assert "Expected delivery" in en.text
    assert zh.status == en.status == "in_transit" and not zh.delayed


def test_summary_of_late_parcel_apologises_with_new_estimate(shipped, session) -> None:
    order, shipment = shipped
    late = shipment.promised_by + timedelta(hours=5)
    _event(session, shipment, at=late - timedelta(hours=2))
    summary = logistics.summary(session, order=order, language="en", now=late)
    assert summary.delay is DelayReason.LATE
    assert "later than promised" in summary.text


@pytest.mark.parametrize(("status", "state", "zh", "en"), [
    (None, OrderState.SHIPPED, "：已发货。", " is shipped."),
    ("picked_up", OrderState.SHIPPED, "：已发货，快递已揽收。", " is shipped and picked up by the carrier."),
    ("in_transit", OrderState.SHIPPED, "：已发货，运输中。", " is shipped and in transit."),
    ("out_for_delivery", OrderState.SHIPPED, "：正在派送中。", " is out for delivery."),
    ("delivered", OrderState.DELIVERED, "：已送达签收。", " is delivered and signed for."),
    ("delivered", OrderState.COMPLETED, "：已签收，订单已完成。", " is delivered and completed."),
    ("exception", OrderState.SHIPPED, "：已发货，但运输出现异常。",
     " is shipped but held up by a delivery problem."),
])
def test_the_answer_starts_with_the_state_in_plain_words(make, session, status, state, zh,
                                                          en) -> None:
    order = make.order(customer=make.customer(), state=state, created_at=NOW - timedelta(days=2))
    shipment = make.shipment(order=order, shipped_at=NOW - timedelta(days=1), promised_days=3)
    if status is None:  # the carrier has not scanned it yet
        for scan in list(shipment.events):
            session.delete(scan)
        session.flush()
        session.expire(shipment)
    else:
        _event(session, shipment, at=NOW - timedelta(hours=2), status=status)
    chinese = logistics.summary(session, order=order, language="zh", now=NOW).text
    english = logistics.summary(session, order=order, language="en", now=NOW).text
    assert chinese.startswith(f"订单 {order.number}{zh}")
    assert english.startswith(f"Order {order.number}{en}")
    # then the carrier and the latest scan
    assert "运单号" in chinese and "tracking number" in english
    if status is not None:
        assert "杭州" in chinese and "Hangzhou" in english


def test_a_refund_in_progress_is_named_with_the_state(shipped, session) -> None:
    from ticketing.core.models import RefundKind, RefundMethod, RefundRequest, RefundState

    order, shipment = shipped
    _event(session, shipment, at=NOW - timedelta(hours=2))
    session.add(RefundRequest(order_id=order.id, customer_id=order.customer_id,
                              idempotency_key="k1", kind=RefundKind.RETURN_AND_REFUND,
                              state=RefundState.UNDER_REVIEW, reason="damaged", amount_cents=100,
                              method=RefundMethod.ORIGINAL))
    session.flush()
    session.refresh(order)
    assert logistics.summary(session, order=order, language="zh", now=NOW).text.startswith(
        f"订单 {order.number}：已发货，运输中（退款处理中）。")
    assert logistics.summary(session, order=order, language="en", now=NOW).text.startswith(
        f"Order {order.number} is shipped and in transit (a refund is in progress).")
