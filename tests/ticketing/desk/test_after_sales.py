"""The after-sales route of rules §REF-5: refunds the rules do not cover become a ticket."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from ticketing.desk import after_sales
from ticketing.shop.refunds import flow as refunds
from ticketing.core.clock import utcnow
from ticketing.core.errors import (
    AlreadyRefunded, DirectRefundAvailable, NotEligible, OrderNotFound, RefundInProgress, ValidationError,
)
from ticketing.core.models import (
    Category, OrderState, RefundMethod, RefundRequest, Ticket, TicketMessage, TicketState,
)

NOW = utcnow()


def open_ticket(session, order, **kw):
    args = dict(customer_id=order.customer_id, order_number=order.number, reason="changed_mind",
                channel="telegram", conversation_id="telegram:1", now=NOW)
    args.update(kw)
    return after_sales.open_after_sales_ticket(session, **args)


def ticket_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Ticket))


def test_late_return_opens_a_refund_ticket_about_the_order(session, make) -> None:
    customer = make.customer()
    order = make.order(customer=customer, state=OrderState.DELIVERED,
                       delivered_at=NOW - timedelta(days=9))
    ticket = open_ticket(session, order, description="  想退货  ", language="zh",
                         transcript=[{"author_type": "bot", "body": "超过七天了", "at": NOW}])
    assert ticket.category is Category.REFUND and ticket.order_id == order.id
    assert ticket.state is TicketState.NEW and ticket.customer_id == customer.id
    assert ticket.channel.value == "telegram" and ticket.conversation_id == "telegram:1"
    assert order.number in ticket.subject and "不想要了" in ticket.subject
    bodies = list(session.scalars(select(TicketMessage.body)
                                  .where(TicketMessage.ticket_id == ticket.id)
                                  .order_by(TicketMessage.id)))
    assert bodies == ["超过七天了", "想退货"]
    assert session.scalar(select(func.count()).select_from(RefundRequest)) == 0  # links nothing


def test_quality_reason_makes_a_quality_ticket_in_english(session, make) -> None:
    order = make.order(customer=make.customer(language="en"), state=OrderState.DELIVERED,
                       product=make.product(no_reason_return_7d=False))
    ticket = open_ticket(session, order, reason="damaged", language="en")
    assert ticket.category is Category.QUALITY and ticket.language == "en"
    assert ticket.subject.startswith("After-sales request") and "Arrived damaged" in ticket.subject


def test_asking_twice_returns_the_same_open_ticket(session, make) -> None:
    order = make.order(customer=make.customer(), state=OrderState.COMPLETED,
                       delivered_at=NOW - timedelta(days=20))
    first = open_ticket(session, order, description="第一次")
    second = open_ticket(session, order, description="又来问", now=NOW + timedelta(hours=1))
    assert second.id == first.id and ticket_count(session) == 1
    bodies = set(session.scalars(select(TicketMessage.body)
                                 .where(TicketMessage.ticket_id == first.id)))
    assert bodies == {"第一次", "又来问"}


def test_directly_refundable_order_is_refused_without_a_ticket(session, make) -> None:
    customer = make.customer()
    for state in (OrderState.PAID, OrderState.SHIPPED, OrderState.DELIVERED):
        order = make.order(customer=customer, state=state)
        with pytest.raises(DirectRefundAvailable) as err:
            open_ticket(session, order)
        assert not isinstance(err.value, NotEligible)
        assert err.value.context["route"] in ("cancel_and_refund", "return_and_refund")
    assert ticket_count(session) == 0


def test_nothing_to_refund_or_refund_under_way_is_refused(session, make) -> None:
    customer = make.customer()
    unpaid = make.order(customer=customer, state=OrderState.PENDING_PAYMENT)
    with pytest.raises(NotEligible) as err:
        open_ticket(session, unpaid)
    assert err.value.context["route"] == "nothing_to_refund"

    paid = make.order(customer=customer, state=OrderState.PAID)
    refunds.request_refund(session, customer_id=customer.id, order_number=paid.number,
                           reason="changed_mind", amount_cents=None,
                           method=RefundMethod.ORIGINAL, idempotency_key="c1", now=NOW)
    with pytest.raises(AlreadyRefunded):
        open_ticket(session, paid)

    shipped = make.order(customer=customer, state=OrderState.SHIPPED)
    refunds.request_refund(session, customer_id=customer.id, order_number=shipped.number,
                           reason="changed_mind", amount_cents=None,
                           method=RefundMethod.ORIGINAL, idempotency_key="r1", now=NOW)
    with pytest.raises(RefundInProgress):
        open_ticket(session, shipped)
    assert ticket_count(session) == 0


def test_bad_input_and_foreign_orders_write_nothing(session, make) -> None:
    order = make.order(customer=make.customer(), state=OrderState.COMPLETED)
    with pytest.raises(ValidationError):
        open_ticket(session, order, reason="bored")
    with pytest.raises(ValidationError):  # "other" must say what it is
        open_ticket(session, order, reason="other", description=" ")
    with pytest.raises(ValidationError):
        open_ticket(session, order, channel="fax")
    with pytest.raises(OrderNotFound):
        open_ticket(session, order, customer_id=make.customer().id)
    assert ticket_count(session) == 0


def test_check_and_after_sales_show_the_deadline_in_the_same_configured_zone(session, make) -> None:
    """Both read the shop's zone from the session's schedule (KEFU_TIMEZONE), never a zone of
    their own: near the 7-day boundary a customer must read one deadline, not two."""
    from ticketing.core.settings import SCHEDULE_KEY, ScheduleSettings

    session.info[SCHEDULE_KEY] = ScheduleSettings(timezone="America/Los_Angeles")
    arrived = NOW.replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=6)
    order = make.order(customer=make.customer(), state=OrderState.DELIVERED, delivered_at=arrived)
    check = refunds.check_eligibility(session, customer_id=order.customer_id,
                                      order_number=order.number, now=NOW)
    los_angeles = (arrived + timedelta(days=7)).astimezone(ZoneInfo("America/Los_Angeles"))
    assert f"{los_angeles.month}月{los_angeles.day}日 {los_angeles:%H:%M}" in check.explanation.zh
    assert f"{los_angeles.day} {los_angeles:%b %H:%M}" in check.explanation.en
    with pytest.raises(DirectRefundAvailable) as err:
        open_ticket(session, order)
    assert err.value.context["explanation"] == check.explanation
