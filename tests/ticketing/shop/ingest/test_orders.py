"""Orders from the shop (rules §ORD-1, §ING-1): items, amounts, states that only move forward,
visibility to their own customer only, and the delivered notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.ticketing.shop.ingest.shop_rows import (
    NOW,
    ORDER_NO,
    at,
    customer,
    one,
    order,
    outbox,
    product,
    run,
    seed,
    statuses,
)
from ticketing.core.errors import OrderNotFound
from ticketing.core.models import Customer, Order, OrderState
from ticketing.shop import orders as shop_orders


def _order(session) -> Order:
    return session.scalars(select(Order).where(Order.number == ORDER_NO)).one()


def test_a_new_order_is_its_customers_and_nobody_elses(session, cipher, make) -> None:
    seed(session, cipher)
    owner = session.scalars(select(Customer).where(Customer.external_id == "C-1")).one()
    found = shop_orders.get_order(session, customer_id=owner.id, number=ORDER_NO)
    assert (found.state, found.total_cents, found.paid_cents) == (OrderState.PAID, 39800, 39800)
    assert [(i.quantity, i.unit_price_cents) for i in found.items] == [(2, 19900)]
    assert found.paid_at is not None and found.created_at == NOW - timedelta(hours=6)
    stranger = make.customer()
    with pytest.raises(OrderNotFound):
        shop_orders.get_order(session, customer_id=stranger.id, number=ORDER_NO)


def test_forward_update_replay_and_stale(session, cipher) -> None:
    seed(session, cipher)
    shipped = order(state="shipped", updated_at=at(3))
    assert one(session, cipher, "orders", shipped).status.value == "updated"
    stored = _order(session)
    assert stored.state is OrderState.SHIPPED and stored.shipped_at == NOW - timedelta(hours=3)
    assert one(session, cipher, "orders", shipped).status.value == "unchanged"
    # the shop's "paid" version from before it shipped arrives late: ignored, not an error
    assert one(session, cipher, "orders", order(updated_at=at(4))).status.value == "stale"
    assert _order(session).state is OrderState.SHIPPED


def test_states_never_go_back_and_cancelled_is_final(session, cipher) -> None:
    seed(session, cipher, order_state="delivered", delivered_at=at(30))
    report = run(session, cipher, "orders", order(state="paid", updated_at=at(1)),
                 order(state="cancelled", updated_at=at(1)),
                 order(state="lost", updated_at=at(1)))
    assert statuses(report) == ["state_backwards", "illegal_transition", "unknown_state"]
    assert _order(session).state is OrderState.DELIVERED
    assert one(session, cipher, "orders", order(number="2026113000000002", state="cancelled")
               ).status.value == "created"
    back = one(session, cipher, "orders", order(number="2026113000000002", state="paid",
                                                updated_at=at(1)))
    assert back.error.code == "state_backwards"


def test_amounts_must_add_up(session, cipher) -> None:
    seed(session, cipher)
    report = run(
        session, cipher, "orders",
        order(refunded_cents=40000, updated_at=at(1)),
        order(paid_cents=50000, updated_at=at(1)),
        order(state="pending_payment", paid_cents=100, number="2026113000000003"),
        order(paid_cents=-5, updated_at=at(1)),
        order(items=[{"product": "P-1", "quantity": 1, "unit_price_cents": -1}],
              updated_at=at(1)),
        order(total_cents=45000, paid_cents=45000, refunded_cents=5000, updated_at=at(1)),
    )
    assert statuses(report) == ["refunded_exceeds_paid", "inconsistent_amounts",
                                "inconsistent_amounts", "invalid_amount", "invalid_amount",
                                "updated"]
    stored = _order(session)
    assert (stored.total_cents, stored.paid_cents, stored.refunded_cents) == (45000, 45000, 5000)


def test_references_must_exist(session, cipher) -> None:
    seed(session, cipher)
    report = run(session, cipher, "orders",
                 order(number="2026113000000004",
                       items=[{"product": "P-404", "quantity": 1, "unit_price_cents": 1}]),
                 order(number="2026113000000005", customer="C-404"),
                 order(number="12345"),
                 order(number="2026113000000006", items=[]))
    assert statuses(report) == ["unknown_product", "customer_not_found", "invalid_order_number",
                                "invalid_input"]
    assert report.results[0].error.field == "items.0.product"
    assert session.scalar(select(Order.id).where(Order.number != ORDER_NO)) is None


def test_items_are_replaced_and_an_order_keeps_its_customer(session, cipher) -> None:
    seed(session, cipher)
    run(session, cipher, "products", product(external_id="P-2", sku="SKU-2"))
    two = order(items=[{"product": "SKU-2", "quantity": 1, "unit_price_cents": 500},
                       {"product": "P-1", "quantity": 1, "unit_price_cents": 19900}],
                paid_cents=20400, updated_at=at(2))
    assert one(session, cipher, "orders", two).status.value == "updated"
    assert [i.quantity * i.unit_price_cents for i in _order(session).items] == [500, 19900]
    assert _order(session).total_cents == 20400
    run(session, cipher, "customers", customer(external_id="C-2", phone="13900139000"))
    moved = one(session, cipher, "orders", order(customer="C-2", updated_at=at(1)))
    assert (moved.error.code, moved.error.field) == ("illegal_transition", "customer")


def test_delivery_is_told_once_and_history_is_not(session, cipher) -> None:
    seed(session, cipher, order_state="shipped")
    delivered = order(state="delivered", delivered_at=at(1), updated_at=at(1))
    run(session, cipher, "orders", delivered)
    run(session, cipher, "orders", delivered, order(state="completed", updated_at=at(0)))
    [message] = outbox(session, "shipping_update")
    assert message.language == "en" and ORDER_NO in message.text and "delivered" in message.text
    # an old order loaded for the record tells nobody
    run(session, cipher, "orders", order(number="2026010100000001", state="delivered",
                                         delivered_at=at(24 * 60), updated_at=at(24 * 60)))
    assert len(outbox(session)) == 1


def test_amounts_beyond_what_the_database_holds_are_row_errors(session, cipher) -> None:
    """2^31 fen would overflow the integer columns and fail the whole batch on PostgreSQL."""
    seed(session, cipher)
    report = run(
        session, cipher, "orders",
        order(number="2026113000000011", total_cents=2_147_483_648),
        order(number="2026113000000012",
              items=[{"product": "P-1", "quantity": 100_000, "unit_price_cents": 1_000_000}]),
        order(number="2026113000000013"),
    )
    assert statuses(report) == ["invalid_amount", "inconsistent_amounts", "created"]
