"""Orders from the shop (rules §ORD-1): state, items, amounts and the times of each step.

Keyed by the order number (16-19 digits, what customers type to the bot). The order belongs to
the customer the shop names, and stays theirs: the bot shows it to that customer only
(``ticketing.shop.orders.get_order``), so moving an order to another customer is refused.
States only move forward (``flows.ORDER_FLOW``). Amounts must add up: nothing negative,
paid at most the total, refunded at most what was paid, nothing paid while payment is
pending. A step the shop reached without saying when takes the row's ``updated_at``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ticketing.core.errors import (
    CustomerNotFound,
    IllegalTransition,
    InconsistentAmounts,
    RefundExceedsPaid,
    UnknownProduct,
)
from ticketing.core.models import Customer, Order, OrderItem, OrderState, Product
import ticketing.shop.ingest.notices as notices
from ticketing.shop.ingest.change import Context, Status, assign, is_stale, newest, utc
from ticketing.shop.ingest.flows import ORDER_FLOW
from ticketing.shop.ingest.rows import OrderRow
from ticketing.shop.orders import parse_order_number

# the time column each state needs, and the states that have passed that step
_STEP_TIMES: dict[str, frozenset[OrderState]] = {
    "paid_at": frozenset({OrderState.PAID, OrderState.SHIPPED, OrderState.DELIVERED,
                          OrderState.COMPLETED}),
    "shipped_at": frozenset({OrderState.SHIPPED, OrderState.DELIVERED, OrderState.COMPLETED}),
    "delivered_at": frozenset({OrderState.DELIVERED, OrderState.COMPLETED}),
    "completed_at": frozenset({OrderState.COMPLETED}),
    "cancelled_at": frozenset({OrderState.CANCELLED}),
}


def check_amounts(row: OrderRow, state: OrderState, items_total: int) -> int:
    """The order's total; InconsistentAmounts / RefundExceedsPaid when they do not add up."""
    total = items_total if row.total_cents is None else row.total_cents
    if row.paid_cents > total:
        raise InconsistentAmounts(f"paid_cents {row.paid_cents} exceeds total_cents {total}",
                                  field="paid_cents")
    if row.refunded_cents > row.paid_cents:
        raise RefundExceedsPaid(
            f"refunded_cents {row.refunded_cents} exceeds paid_cents {row.paid_cents}",
            field="refunded_cents")
    if state is OrderState.PENDING_PAYMENT and row.paid_cents > 0:
        raise InconsistentAmounts("an order awaiting payment cannot have paid_cents",
                                  field="paid_cents")
    return total


def _items(session: Session, row: OrderRow) -> list[tuple[int, int, int]]:
    """(product id, quantity, unit price) per item; UnknownProduct for a product not sent."""
    refs = {item.product for item in row.items}
    found: dict[str, int] = {}
    for product in session.execute(
            select(Product.id, Product.external_id, Product.sku)
            .where(or_(Product.external_id.in_(refs), Product.sku.in_(refs)))):
        found.setdefault(product.sku, product.id)
        if product.external_id is not None:
            found[product.external_id] = product.id  # the external id wins over a same sku
    items = []
    for index, item in enumerate(row.items):
        if item.product not in found:
            raise UnknownProduct(f"items.{index}.product is not a known product",
                                 field=f"items.{index}.product")
        items.append((found[item.product], item.quantity, item.unit_price_cents))
    return items


def _step_times(row: OrderRow, state: OrderState, current: Order | None
                ) -> dict[str, datetime | None]:
    times: dict[str, datetime | None] = {}
    for name, reached in _STEP_TIMES.items():
        given: datetime | None = getattr(row, name)
        kept = getattr(current, name) if current is not None else None
        if given is not None:
            times[name] = utc(given)
        elif kept is not None:
            times[name] = kept
        elif state in reached and not (name == "paid_at" and row.paid_cents == 0):
            times[name] = utc(row.updated_at)
        else:
            times[name] = None
    return times


def upsert_order(session: Session, row: OrderRow, *, ctx: Context) -> Status:
    """Create or update one order with its items; tells the customer when it is delivered."""
    number = parse_order_number(row.number)
    order = session.scalars(select(Order).where(Order.number == number)
                            .with_for_update()).one_or_none()
    if order is not None and is_stale(order.source_updated_at, row.updated_at):
        return Status.STALE
    customer_id = session.scalar(select(Customer.id).where(Customer.external_id == row.customer))
    if customer_id is None:
        raise CustomerNotFound("customer is not a known customer", field="customer")
    if order is not None and order.customer_id != customer_id:
        raise IllegalTransition("an order cannot move to another customer", field="customer")
    state = OrderState(row.state)
    if order is not None:
        ORDER_FLOW.check(order.state, state)
    items = _items(session, row)
    total = check_amounts(row, state, sum(qty * price for _, qty, price in items))
    values: dict[str, Any] = {
        "state": state, "total_cents": total, "paid_cents": row.paid_cents,
        "refunded_cents": row.refunded_cents, **_step_times(row, state, order),
    }
    if row.payment_method is not None:
        values["payment_method"] = row.payment_method
    if row.created_at is not None or order is None:
        values["created_at"] = utc(row.created_at or row.updated_at)
    was = order.state if order is not None else None
    if order is None:
        order = Order(number=number, customer_id=customer_id,
                      source_updated_at=utc(row.updated_at), **values)
        if row.address is not None:
            order.address_enc = ctx.cipher.encrypt(row.address, field="address")
        session.add(order)
        session.flush()
        session.add_all(OrderItem(order_id=order.id, product_id=product_id, quantity=quantity,
                                  unit_price_cents=price) for product_id, quantity, price in items)
        status = Status.CREATED
    else:
        changed = assign(order, values)
        if "address" in row.model_fields_set and (
                (order.address_enc is None) != (row.address is None) or (
                    row.address is not None
                    and ctx.cipher.decrypt(order.address_enc, field="address") != row.address)):
            order.address_enc = None if row.address is None else ctx.cipher.encrypt(
                row.address, field="address")
            changed = True
        stored = [(item.product_id, item.quantity, item.unit_price_cents) for item in order.items]
        if stored != items:
            for item in list(order.items):
                session.delete(item)
            session.flush()
            session.add_all(OrderItem(order_id=order.id, product_id=product_id,
                                      quantity=quantity, unit_price_cents=price)
                            for product_id, quantity, price in items)
            changed = True
        order.source_updated_at = newest(order.source_updated_at, row.updated_at)
        status = Status.UPDATED if changed else Status.UNCHANGED
    session.flush()
    session.expire(order, ["items"])
    if state is OrderState.DELIVERED and was is not OrderState.DELIVERED \
            and ctx.is_fresh(order.delivered_at):
        notices.delivered(session, customer_id=customer_id, order_id=order.id, number=number,
                          now=ctx.now)
    return status
