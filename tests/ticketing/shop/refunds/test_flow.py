"""Refund rules and lifecycle (rules §REF-1, §REF-3, §REF-4, §REF-6, §REF-7). Every refusal is checked to have written nothing."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.shop.refunds import flow as refunds, stats as refund_stats
from ticketing.core.clock import utcnow
from ticketing.core.errors import (
    AgentNotFound,
    AlreadyRefunded,
    Conflict,
    IllegalTransition,
    InvalidAmount,
    InvalidOrderNumber,
    NotEligible,
    OrderNotFound,
    RefundInProgress,
    RefundNotFound,
    ValidationError,
)
from ticketing.core.models import (
    AuditLog,
    Order,
    OrderItem,
    OrderState,
    RefundKind,
    RefundMethod,
    RefundRequest,
    RefundState,
)
from ticketing.shop.refunds.rules import RefundReason, Route, reason_label, reason_options

NOW = utcnow()
ORIGINAL = RefundMethod.ORIGINAL


def snapshot(session: Session) -> tuple[object, ...]:
    return (
        session.scalar(select(func.count()).select_from(AuditLog)),
        tuple(session.execute(
            select(RefundRequest.id, RefundRequest.state, RefundRequest.amount_cents,
                   RefundRequest.reviewed_by, RefundRequest.done_at)
            .order_by(RefundRequest.id)).all()),
        tuple(session.execute(
            select(Order.id, Order.state, Order.refunded_cents, Order.cancelled_at)
            .order_by(Order.id)).all()),
    )


@contextmanager
def unchanged(session: Session) -> Iterator[None]:
    """The block must leave the session clean and the database as it was."""
    before = snapshot(session)
    yield
    assert not session.new and not session.dirty and not session.deleted
    assert snapshot(session) == before


def ask(session: Session, order: Order, **kw: object) -> RefundRequest:
    args: dict[str, object] = dict(
        customer_id=order.customer_id, order_number=order.number, reason="changed_mind",
        amount_cents=None, method=ORIGINAL, idempotency_key=f"key-{order.id}", now=NOW,
    )
    args.update(kw)
    return refunds.request_refund(session, **args)  # type: ignore[arg-type]


def eligibility(session: Session, order: Order, **kw: object) -> refunds.Eligibility:
    return refunds.check_eligibility(  # type: ignore[arg-type]
        session, customer_id=order.customer_id, order_number=order.number, now=NOW, **kw)


def audits(session: Session, action: str) -> int:
    return session.scalar(select(func.count()).select_from(AuditLog)
                          .where(AuditLog.action == action)) or 0


@pytest.fixture
def customer(make):  # type: ignore[no-untyped-def]
    return make.customer()


# --- eligibility ---------------------------------------------------------------------------------
def test_paid_unshipped_order_is_cancel_and_refund(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.PAID)
    e = eligibility(session, order)
    assert e.route is Route.CANCEL_AND_REFUND and e.can_request
    assert e.kind is RefundKind.CANCEL_AND_REFUND
    assert e.refundable_cents == order.paid_cents == 19900
    assert "¥199.00" in e.explanation.zh and "¥199.00" in e.explanation.en
    assert "取消" in e.explanation.zh and "cancelled" in e.explanation.en
    assert e.deadline is None


def test_shipped_not_delivered_counts_as_within_window(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.SHIPPED)
    e = eligibility(session, order)
    assert e.route is Route.RETURN_AND_REFUND and e.deadline is None
    assert e.kind is RefundKind.RETURN_AND_REFUND


def test_delivered_recently_gives_deadline_in_shop_time(session, make, customer) -> None:
    arrived = NOW.replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=3)
    order = make.order(customer=customer, state=OrderState.DELIVERED, delivered_at=arrived)
    e = eligibility(session, order)
    assert e.route is Route.RETURN_AND_REFUND
    assert e.deadline == arrived + timedelta(days=7)
    local = arrived + timedelta(days=7, hours=8)  # the shop's time, as every answer writes it
    assert f"{local.month}月{local.day}日 10:00" in e.explanation.zh
    assert f"{local.day} {local.strftime('%b')} 10:00" in e.explanation.en


def test_delivery_date_falls_back_to_shipment(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    order.delivered_at = None
    shipment = make.shipment(order=order, shipped_at=NOW - timedelta(days=20), delivered=True)
    session.flush()
    e = eligibility(session, order)
    assert shipment.delivered_at is not None
    assert e.route is Route.AFTER_SALES_TICKET


@pytest.mark.parametrize("days, route", [
    (timedelta(days=7), Route.RETURN_AND_REFUND),
    (timedelta(days=7, minutes=1), Route.AFTER_SALES_TICKET),
    (timedelta(days=8), Route.AFTER_SALES_TICKET),
])
def test_seven_day_window_boundary(session, make, customer, days, route) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED, delivered_at=NOW - days)
    e = eligibility(session, order)
    assert e.route is route
    if route is Route.AFTER_SALES_TICKET:
        assert e.ticket_category == "refund" and not e.can_request
        assert "7" in e.explanation.zh and "7 days" in e.explanation.en


def test_completed_order_goes_to_after_sales(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.COMPLETED,
                       delivered_at=NOW - timedelta(days=2))
    e = eligibility(session, order)
    assert e.route is Route.AFTER_SALES_TICKET and "完成" in e.explanation.zh


def test_one_excluded_product_excludes_the_order(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    underwear = make.product(name_zh="内衣", name_en="Underwear", no_reason_return_7d=False)
    session.add(OrderItem(order_id=order.id, product_id=underwear.id, quantity=1,
                          unit_price_cents=underwear.price_cents))
    session.flush()
    e = eligibility(session, order)
    assert e.route is Route.AFTER_SALES_TICKET and e.ticket_category == "refund"
    assert "无理由" in e.explanation.zh


@pytest.mark.parametrize("reason", ["quality", "damaged", "wrong_item", "not_as_described"])
def test_quality_problem_on_excluded_item_is_an_after_sales_quality_ticket(
    session, make, customer, reason
) -> None:
    product = make.product(no_reason_return_7d=False)
    order = make.order(customer=customer, state=OrderState.DELIVERED, product=product)
    e = eligibility(session, order, reason=reason)
    assert e.route is Route.AFTER_SALES_TICKET and e.ticket_category == "quality"
    assert "质量问题" in e.explanation.zh and "Quality" in e.explanation.en


def test_quality_problem_on_returnable_item_is_return_and_refund(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    assert eligibility(session, order, reason="damaged").route is Route.RETURN_AND_REFUND


@pytest.mark.parametrize("state", [OrderState.PENDING_PAYMENT, OrderState.CANCELLED])
def test_unpaid_or_cancelled_has_nothing_to_refund(session, make, customer, state) -> None:
    order = make.order(customer=customer, state=state)
    if state is OrderState.CANCELLED:
        order.paid_cents = 0
    e = eligibility(session, order)
    assert e.route is Route.NOTHING_TO_REFUND and not e.can_request and e.kind is None


def test_fully_refunded_has_nothing_to_refund(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    order.refunded_cents = order.paid_cents
    e = eligibility(session, order)
    assert e.route is Route.NOTHING_TO_REFUND and e.refundable_cents == 0
    assert "全额退款" in e.explanation.zh


def test_active_request_shows_as_in_progress(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    refund = ask(session, order)
    e = eligibility(session, order)
    assert e.route is Route.REFUND_IN_PROGRESS and e.active_refund_id == refund.id
    assert "审核中" in e.explanation.zh and "under review" in e.explanation.en


def test_order_number_is_normalised(session, make, customer) -> None:
    order = make.order(customer=customer, number="2026112512345678")
    e = refunds.check_eligibility(session, customer_id=customer.id,
                                  order_number=" #2026-1125-１２３４-5678 ", now=NOW)
    assert e.order_number == "2026112512345678"


@pytest.mark.parametrize("raw", ["12345", "abc", "", "2026112512345678901234"])
def test_bad_order_number(session, make, customer, raw) -> None:
    with pytest.raises(InvalidOrderNumber):
        refunds.check_eligibility(session, customer_id=customer.id, order_number=raw, now=NOW)


def test_other_customers_order_is_indistinguishable_from_missing(session, make, customer) -> None:
    order = make.order(customer=make.customer(name="李娜"))
    with pytest.raises(OrderNotFound) as theirs:
        refunds.check_eligibility(session, customer_id=customer.id,
                                  order_number=order.number, now=NOW)
    missing = "9" * 16 if order.number != "9" * 16 else "8" * 16
    with pytest.raises(OrderNotFound) as nowhere:
        refunds.check_eligibility(session, customer_id=customer.id,
                                  order_number=missing, now=NOW)
    assert type(theirs.value) is type(nowhere.value)
    assert str(theirs.value) == str(nowhere.value)
    assert theirs.value.context.keys() == nowhere.value.context.keys()


def test_reason_options_are_bilingual_buttons() -> None:
    zh, en = reason_options("zh-CN"), reason_options("en")
    assert [c for c, _ in zh] == [r.value for r in RefundReason] == [c for c, _ in en]
    assert len(zh) == 8 and dict(zh)["quality"] == "质量问题"
    assert dict(en)["wrong_item"] == "Wrong item sent"
    assert reason_label("damaged", "zh") == "商品破损" and reason_label("legacy", "en") == "legacy"


# --- cancel and refund -------------------------------------------------------------------------
def test_unshipped_refund_cancels_and_refunds_in_full_at_once(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.PAID)
    refund = ask(session, order, method="balance")
    assert refund.kind is RefundKind.CANCEL_AND_REFUND and refund.state is RefundState.DONE
    assert refund.amount_cents == order.paid_cents and refund.method is RefundMethod.BALANCE
    assert refund.done_at == NOW and refund.reviewed_at == NOW
    session.expire_all()
    order = session.get(Order, order.id)
    assert order.state is OrderState.CANCELLED and order.cancelled_at == NOW
    assert order.refunded_cents == order.paid_cents
    assert audits(session, "refund.requested") == 1 and audits(session, "refund.completed") == 1


def test_cancellation_cannot_be_partial(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.PAID)
    with unchanged(session), pytest.raises(InvalidAmount) as err:
        ask(session, order, amount_cents=100)
    assert err.value.context["refundable_cents"] == order.paid_cents


def test_second_request_after_cancellation_is_already_refunded(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.PAID)
    ask(session, order)
    with unchanged(session), pytest.raises(AlreadyRefunded) as err:
        ask(session, order, idempotency_key="another")
    assert isinstance(err.value, NotEligible) and isinstance(err.value, RefundInProgress)
    assert err.value.context["route"] == "nothing_to_refund"
    assert "全额退款" in err.value.text("zh")


# --- return and refund -------------------------------------------------------------------------
def test_return_and_refund_full_lifecycle(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED, quantity=2)
    agent = make.agent()
    refund = ask(session, order, reason="wrong_size", amount_cents=19900,
                 reason_text="  太小了 ")
    assert refund.state is RefundState.UNDER_REVIEW and refund.kind is RefundKind.RETURN_AND_REFUND
    assert refund.reason == "wrong_size" and refund.reason_text == "太小了"
    assert order.refunded_cents == 0 and order.state is OrderState.DELIVERED

    later = NOW + timedelta(hours=2)
    refunds.review(session, refund_id=refund.id, agent_id=agent.id, approve=True, now=later)
    assert refund.state is RefundState.PROCESSING and refund.reviewed_by == agent.id
    assert refund.reviewed_at == later and order.refunded_cents == 0

    refunds.complete(session, refund_id=refund.id, agent_id=agent.id, now=later + timedelta(days=2))
    session.expire_all()
    refund = session.get(RefundRequest, refund.id)
    assert refund.state is RefundState.DONE and refund.done_at == later + timedelta(days=2)
    assert session.get(Order, order.id).refunded_cents == 19900
    assert [audits(session, a) for a in ("refund.requested", "refund.reviewed",
                                         "refund.completed")] == [1, 1, 1]

    # the rest of the order can still be returned, but not more than is left
    with unchanged(session), pytest.raises(InvalidAmount):
        ask(session, order, idempotency_key="second", amount_cents=19901)
    second = ask(session, order, idempotency_key="second")
    assert second.amount_cents == 19900


def test_rejection_needs_reason_and_frees_the_order(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.SHIPPED)
    agent = make.agent()
    refund = ask(session, order)
    with unchanged(session), pytest.raises(ValidationError):
        refunds.review(session, refund_id=refund.id, agent_id=agent.id, approve=False, note=" ")
    refunds.review(session, refund_id=refund.id, agent_id=agent.id, approve=False,
                   note="商品已拆封使用", now=NOW)
    assert refund.state is RefundState.REJECTED and refund.rejection_reason == "商品已拆封使用"
    assert order.refunded_cents == 0
    again = ask(session, order, idempotency_key="retry")
    assert again.id != refund.id and again.state is RefundState.UNDER_REVIEW


def test_review_and_complete_refuse_wrong_states(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    agent = make.agent()
    refund = ask(session, order)
    with unchanged(session), pytest.raises(IllegalTransition):
        refunds.complete(session, refund_id=refund.id, now=NOW)
    refunds.review(session, refund_id=refund.id, agent_id=agent.id, approve=True, now=NOW)
    with unchanged(session), pytest.raises(IllegalTransition):
        refunds.review(session, refund_id=refund.id, agent_id=agent.id, approve=False,
                       note="no", now=NOW)
    refunds.complete(session, refund_id=refund.id, now=NOW)
    with unchanged(session), pytest.raises(IllegalTransition):
        refunds.complete(session, refund_id=refund.id, now=NOW)
    cancelled = session.get(RefundRequest, ask(
        session, make.order(customer=customer), idempotency_key="c").id)
    with unchanged(session), pytest.raises(IllegalTransition):
        refunds.review(session, refund_id=cancelled.id, agent_id=agent.id, approve=True)


def test_review_and_complete_unknown_ids(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    agent = make.agent()
    refund = ask(session, order)
    with unchanged(session), pytest.raises(AgentNotFound):
        refunds.review(session, refund_id=refund.id, agent_id=agent.id + 999, approve=True)
    with unchanged(session), pytest.raises(RefundNotFound):
        refunds.review(session, refund_id=refund.id + 999, agent_id=agent.id, approve=True)
    with unchanged(session), pytest.raises(RefundNotFound):
        refunds.complete(session, refund_id=refund.id + 999)
    with unchanged(session), pytest.raises(AgentNotFound):
        refunds.complete(session, refund_id=refund.id, agent_id=agent.id + 999)


def test_complete_refuses_more_than_is_left(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    agent = make.agent()
    refund = ask(session, order)
    refunds.review(session, refund_id=refund.id, agent_id=agent.id, approve=True, now=NOW)
    order.refunded_cents = 100  # money went back some other way meanwhile
    session.flush()
    with unchanged(session), pytest.raises(InvalidAmount):
        refunds.complete(session, refund_id=refund.id, now=NOW)


# --- refusals -----------------------------------------------------------------------------------
@pytest.mark.parametrize("state, delivered_days, route", [
    (OrderState.DELIVERED, 8, "after_sales_ticket"),
    (OrderState.COMPLETED, 20, "after_sales_ticket"),
    (OrderState.PENDING_PAYMENT, None, "nothing_to_refund"),
])
def test_not_eligible_orders_write_nothing(session, make, customer, state, delivered_days,
                                           route) -> None:
    delivered = None if delivered_days is None else NOW - timedelta(days=delivered_days)
    order = make.order(customer=customer, state=state, delivered_at=delivered)
    with unchanged(session), pytest.raises(NotEligible) as err:
        ask(session, order)
    assert err.value.context["route"] == route
    assert not isinstance(err.value, AlreadyRefunded)
    assert err.value.context["explanation"].zh


def test_quality_reason_on_excluded_item_refuses_with_quality_ticket(session, make,
                                                                     customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED,
                       product=make.product(no_reason_return_7d=False))
    with unchanged(session), pytest.raises(NotEligible) as err:
        ask(session, order, reason=RefundReason.DAMAGED)
    assert err.value.context["route"] == "after_sales_ticket"
    assert err.value.context["ticket_category"] == "quality"


def test_active_refund_blocks_a_second_one(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    first = ask(session, order)
    with unchanged(session), pytest.raises(RefundInProgress) as err:
        ask(session, order, idempotency_key="other")
    assert not isinstance(err.value, NotEligible)
    assert err.value.context["refund_id"] == first.id


@pytest.mark.parametrize("amount", [0, -5, 19901, 1.5, True, "100"])
def test_invalid_amounts(session, make, customer, amount) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    with unchanged(session), pytest.raises(InvalidAmount):
        ask(session, order, amount_cents=amount)


@pytest.mark.parametrize("kw", [
    {"reason": "because"}, {"method": "cash"}, {"idempotency_key": ""},
    {"idempotency_key": "  "}, {"idempotency_key": "k" * 81}, {"idempotency_key": None},
    {"reason": "other"}, {"reason": "other", "reason_text": "  "},
    {"reason_text": "长" * 1001},
])
def test_invalid_input_writes_nothing(session, make, customer, kw) -> None:
    order = make.order(customer=customer, state=OrderState.PAID)
    with unchanged(session), pytest.raises(ValidationError):
        ask(session, order, **kw)


def test_other_reason_with_text_is_accepted(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    refund = ask(session, order, reason="other", reason_text="送人的礼物对方不喜欢")
    assert refund.reason == "other"


def test_request_on_someone_elses_order_is_not_found(session, make, customer) -> None:
    order = make.order(customer=make.customer(name="王芳"), state=OrderState.PAID)
    with unchanged(session), pytest.raises(OrderNotFound):
        ask(session, order, customer_id=customer.id)


# --- idempotency ---------------------------------------------------------------------------------
def test_same_key_returns_same_request_even_when_done(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.PAID)
    first = ask(session, order, idempotency_key="tg-42")
    session.commit()
    with unchanged(session):
        again = ask(session, order, idempotency_key="tg-42", amount_cents=5)
    assert again.id == first.id
    assert session.scalar(select(func.count()).select_from(RefundRequest)) == 1
    assert session.get(Order, order.id).refunded_cents == order.paid_cents
    assert audits(session, "refund.requested") == 1


def test_key_reused_on_another_order_is_a_conflict(session, make, customer) -> None:
    ask(session, make.order(customer=customer), idempotency_key="dup")
    other = make.order(customer=customer, state=OrderState.DELIVERED)
    with unchanged(session), pytest.raises(Conflict):
        ask(session, other, idempotency_key="dup")


# --- status and reports --------------------------------------------------------------------------
def test_status_explains_each_refund(session, make, customer) -> None:
    agent = make.agent()
    cancelled = make.order(customer=customer, state=OrderState.PAID)
    returned = make.order(customer=customer, state=OrderState.DELIVERED)
    ask(session, cancelled, now=NOW - timedelta(hours=1))
    r = ask(session, returned, amount_cents=5000)
    refunds.review(session, refund_id=r.id, agent_id=agent.id, approve=False, note="超出期限",
                   now=NOW)
    make.order(customer=make.customer(), state=OrderState.PAID)  # someone else's: not listed

    listed = refunds.status(session, customer_id=customer.id)
    assert [s.order_number for s in listed] == [returned.number, cancelled.number]
    rejected, done = listed
    assert rejected.state is RefundState.REJECTED and "超出期限" in rejected.explanation.zh
    assert "¥50.00" in rejected.explanation.en and "not approved" in rejected.explanation.en
    assert done.state is RefundState.DONE and "原支付方式" in done.explanation.zh
    assert "¥199.00 has been refunded" in done.explanation.en

    only = refunds.status(session, customer_id=customer.id, order_number=cancelled.number)
    assert [s.refund_id for s in only] == [done.refund_id]
    assert refunds.status(session, customer_id=make.customer().id) == []


def test_status_hides_other_customers_orders(session, make, customer) -> None:
    theirs = make.order(customer=make.customer(), state=OrderState.PAID)
    ask(session, theirs)
    with pytest.raises(OrderNotFound):
        refunds.status(session, customer_id=customer.id, order_number=theirs.number)


def test_under_review_and_processing_explanations(session, make, customer) -> None:
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    r = ask(session, order)
    [s] = refunds.status(session, customer_id=customer.id)
    assert "审核中" in s.explanation.zh
    refunds.review(session, refund_id=r.id, agent_id=make.agent().id, approve=True, now=NOW)
    [s] = refunds.status(session, customer_id=customer.id)
    assert "寄回" in s.explanation.zh and "send the goods back" in s.explanation.en


def test_reason_stats_count_requests_in_window(session, make, customer) -> None:
    def place(reason: str, when: object, state: OrderState = OrderState.DELIVERED) -> None:
        o = make.order(customer=customer, state=state)
        ask(session, o, reason=reason, now=when, idempotency_key=f"s-{o.id}")

    place("quality", NOW - timedelta(days=1))
    place("quality", NOW - timedelta(days=2))
    place("wrong_size", NOW - timedelta(days=1), OrderState.PAID)  # done: money counted
    place("quality", NOW - timedelta(days=40))  # outside the window
    stats = refund_stats.refund_reason_stats(session, since=NOW - timedelta(days=30), until=NOW)
    assert [(s.reason, s.requests, s.refunded_cents) for s in stats] == [
        ("quality", 2, 0), ("wrong_size", 1, 19900)]
    assert stats[0].label.zh == "质量问题"


def test_repeated_refunds_alert(session, make, customer) -> None:
    other = make.customer()
    for i in range(3):
        ask(session, make.order(customer=customer), idempotency_key=f"a{i}",
            now=NOW - timedelta(days=i))
    ask(session, make.order(customer=customer), idempotency_key="old",
        now=NOW - timedelta(days=60))
    for i in range(2):
        ask(session, make.order(customer=other), idempotency_key=f"b{i}")
    found = refund_stats.customers_with_repeated_refunds(session, since=NOW - timedelta(days=30))
    assert [(f.customer_id, f.requests, f.amount_cents) for f in found] == [
        (customer.id, 3, 3 * 19900)]
    assert {f.customer_id for f in refund_stats.customers_with_repeated_refunds(
        session, since=NOW - timedelta(days=30), threshold=2)} == {customer.id, other.id}
    assert refund_stats.customers_with_repeated_refunds(
        session, since=NOW - timedelta(days=90), until=NOW - timedelta(days=30)) == []
    with pytest.raises(ValidationError):
        refund_stats.customers_with_repeated_refunds(session, since=NOW, threshold=0)
