"""Order lookup and explanation: parsing what customers type, privacy, plain-language states."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ticketing.shop import orders
from ticketing.core.errors import InvalidOrderNumber, OrderNotFound
from ticketing.core.models import OrderState

NUMBER = "2026112512345678"


@pytest.mark.parametrize(
    "raw",
    [
        "2026112512345678",
        " 2026 1125 1234 5678 ",
        "#2026112512345678",
        "2026-1125-1234-5678",
        "２０２６１１２５１２３４５６７８",  # full-width digits
        "订单号:2026112512345678",
        "订单号：2026 1125 1234 5678",
        "订单编号 #2026112512345678",
        "Order no. 2026112512345678",
        "order #2026-1125-1234-5678",
    ],
)
def test_parse_accepts_what_customers_type(raw: str) -> None:
    assert orders.parse_order_number(raw) == NUMBER


def test_parse_accepts_16_to_19_digits() -> None:
    assert orders.parse_order_number("1" * 16) == "1" * 16
    assert orders.parse_order_number("9" * 19) == "9" * 19


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "1" * 15, "1" * 20, "20261125abc45678", "2026112512345678x",
     "订单号:", "¹²³⁴2026112512345678", "my order 2026112512345678 please", "2026.1125.1234.5678"],
)
def test_parse_rejects_malformed_numbers(raw: str) -> None:
    with pytest.raises(InvalidOrderNumber):
        orders.parse_order_number(raw)


def test_get_order_finds_own_order_from_typed_number(make, session) -> None:
    alice = make.customer()
    order = make.order(customer=alice, number=NUMBER)
    assert orders.get_order(session, customer_id=alice.id, number="订单号：2026-1125-1234-5678") is order


def test_another_customers_order_is_indistinguishable_from_missing(make, session) -> None:
    alice, mallory = make.customer(), make.customer(name="Mallory")
    make.order(customer=alice, number=NUMBER)

    with pytest.raises(OrderNotFound) as foreign:
        orders.get_order(session, customer_id=mallory.id, number=NUMBER)
    with pytest.raises(OrderNotFound) as missing:
        orders.get_order(session, customer_id=mallory.id, number="9999999999999999")

    assert type(foreign.value) is type(missing.value)
    assert str(foreign.value) == str(missing.value)
    assert foreign.value.text("zh") == missing.value.text("zh")
    assert foreign.value.context == missing.value.context == {}


def test_get_order_rejects_malformed_number_before_lookup(make, session) -> None:
    alice = make.customer()
    with pytest.raises(InvalidOrderNumber):
        orders.get_order(session, customer_id=alice.id, number="12345")


def test_recent_orders_newest_first_and_only_own(make, session) -> None:
    alice, bob = make.customer(), make.customer()
    base = datetime(2026, 11, 1, tzinfo=timezone.utc)
    made = [make.order(customer=alice, created_at=base + timedelta(days=i)) for i in range(4)]
    make.order(customer=bob, created_at=base + timedelta(days=10))

    recent = orders.recent_orders(session, customer_id=alice.id, limit=3)
    assert [o.id for o in recent] == [made[3].id, made[2].id, made[1].id]
    assert orders.recent_orders(session, customer_id=alice.id, limit=0) == []


@pytest.mark.parametrize(
    ("state", "zh_word", "en_word"),
    [
        (OrderState.PENDING_PAYMENT, "等待付款", "waiting for payment"),
        (OrderState.PAID, "备货", "preparing"),
        (OrderState.SHIPPED, "已发货", "shipped"),
        (OrderState.DELIVERED, "已签收", "delivered"),
        (OrderState.COMPLETED, "已完成", "completed"),
        (OrderState.CANCELLED, "已取消", "cancelled"),
    ],
)
def test_explain_state_in_both_languages(make, state, zh_word, en_word) -> None:
    order = make.order(customer=make.customer(), state=state)
    zh = orders.explain_state(order, language="zh-CN")
    en = orders.explain_state(order, language="en")
    assert order.number in zh and order.number in en
    assert zh_word in zh and en_word in en
    assert "退款" not in zh.replace("取消并退款", "") and "refunded" not in en


def test_explanations_differ_per_state(make) -> None:
    customer = make.customer()
    texts = {orders.explain_state(make.order(customer=customer, state=s, number=NUMBER[:-1] + str(i)),
                                  language="en").split(" ", 2)[2]
             for i, s in enumerate(OrderState)}
    assert len(texts) == len(OrderState)


def test_explain_state_says_what_happens_next(make) -> None:
    paid = make.order(customer=make.customer(), state=OrderState.PAID)
    assert "tracking number" in orders.explain_state(paid, language="en")
    assert "快递单号" in orders.explain_state(paid, language="zh")


def test_explain_state_mentions_full_and_partial_refunds(make) -> None:
    customer = make.customer()
    cancelled = make.order(customer=customer, state=OrderState.CANCELLED)
    cancelled.refunded_cents = cancelled.paid_cents
    completed = make.order(customer=customer, state=OrderState.COMPLETED, quantity=2)
    completed.refunded_cents = 5000

    assert "全额退款" in orders.explain_state(cancelled, language="zh")
    assert "refunded in full" in orders.explain_state(cancelled, language="en")
    partial = orders.explain_state(completed, language="en")
    assert "¥50.00" in partial and "of the ¥398.00 paid" in partial
    assert "¥50.00" in orders.explain_state(completed, language="zh")


def test_summary_lists_items_by_name_in_language(make, session) -> None:
    customer = make.customer()
    product = make.product(name_zh="保温杯", name_en="Thermos", price_cents=9900)
    order = make.order(customer=customer, product=product, quantity=2, state=OrderState.SHIPPED)

    zh = orders.summary(session, order=order, language="zh")
    en = orders.summary(session, order=order, language="en")
    assert "保温杯 × 2  ¥198.00" in zh and "Thermos" not in zh
    assert "Thermos × 2  ¥198.00" in en and "Order number: " + order.number in en
    assert "已发货" in zh and "shipped" in en
    assert "Refunded" not in en
    order.refunded_cents = 9900
    assert "Refunded: ¥99.00" in orders.summary(session, order=order, language="en")
