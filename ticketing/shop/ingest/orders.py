"""Orders from the shop (rules §ORD-1): state, items, amounts and the times of each step.

Keyed by the order number (16-19 digits, what customers type to the bot). The order belongs to
the customer the shop names, and stays theirs: the bot shows it to that customer only
(``ticketing.shop.orders.get_order``), so moving an order to another customer is refused.
States only move forward (``flows.ORDER_FLOW``). Amounts must add up: nothing negative,
paid at most the total, refunded at most what was paid, nothing paid while payment is
pending. A step the shop reached without saying when takes the row's ``updated_at``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ticketing.core.errors import (
    CustomerNotFound,
    IllegalTransition,
    InconsistentAmounts,
    RefundExceedsPaid,
    UnknownProduct,
)
from ticketing.core.models import Order, OrderItem, OrderState
import ticketing.shop.ingest.notices as notices
from ticketing.shop.ingest.change import Context, Status, assign, is_stale, newest, utc
from ticketing.shop.ingest.flows import ORDER_FLOW
from ticketing.shop.ingest.lookups import (
    CUSTOMER_ID,
    ORDER_WITH_ITEMS,
    PRODUCT_REF,
    SKU,
    Lookups,
    number_or_none,
)
from ticketing.shop.ingest.rows import MAX_CENTS, OrderRow
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
    if total > MAX_CENTS:
        raise InconsistentAmounts(f"the total {total} fen is more than one order may hold "
                                  f"({MAX_CENTS})", field="items")
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


def preload(known: Lookups, rows: Sequence[OrderRow], ctx: Context) -> None:
    """The batch's orders (locked, with their items), customers and products."""
    known.preload(ORDER_WITH_ITEMS, (number_or_none(row.number) for row in rows))
    known.preload(CUSTOMER_ID, (row.customer for row in rows))
    refs = {item.product for row in rows for item in row.items}
    known.preload(PRODUCT_REF, refs)
    known.preload(SKU, [ref for ref in refs if known.one(PRODUCT_REF, ref) is None])


def _items(known: Lookups, row: OrderRow) -> list[tuple[int, int, int]]:
    """(product id, quantity, unit price) per item; UnknownProduct for a product not sent.
    An item names a product by its external id, else by its SKU."""
    items = []
    for index, item in enumerate(row.items):
        product = known.one(PRODUCT_REF, item.product) or known.one(SKU, item.product)
        if product is None:
            raise UnknownProduct(f"items.{index}.product is not a known product",
                                 field=f"items.{index}.product")
        items.append((product.id, item.quantity, item.unit_price_cents))
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


def _new_address(ctx: Context, row: OrderRow, order: Order) -> bool:
    """True when the row sets an address other than the stored one (absent: keep it)."""
    if "address" not in row.model_fields_set:
        return False
    if order.address_enc is None or row.address is None:
        return (order.address_enc is None) != (row.address is None)
    return ctx.cipher.decrypt(order.address_enc, field="address") != row.address


def _replace_items(session: Session, order: Order, items: list[tuple[int, int, int]]) -> None:
    for item in order.items:
        if item.id is None:  # made by an earlier row of this batch, not written yet
            session.expunge(item)
        else:
            session.delete(item)
    order.items = [OrderItem(product_id=product_id, quantity=quantity, unit_price_cents=price)
                   for product_id, quantity, price in items]


def upsert_order(session: Session, row: OrderRow, *, ctx: Context, known: Lookups) -> Status:
    """Create or update one order with its items; tells the customer when it is delivered.
    Everything that can refuse the row is checked before the first change."""
    number = parse_order_number(row.number)
    order = known.one(ORDER_WITH_ITEMS, number)
    if order is not None and is_stale(order.source_updated_at, row.updated_at):
        return Status.STALE
    customer = known.one(CUSTOMER_ID, row.customer)
    if customer is None:
        raise CustomerNotFound("customer is not a known customer", field="customer")
    if order is not None and order.customer_id != customer.id:
        raise IllegalTransition("an order cannot move to another customer", field="customer")
    state = OrderState(row.state)
    if order is not None:
        ORDER_FLOW.check(order.state, state)
    items = _items(known, row)
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
        order = Order(number=number, customer_id=customer.id,
                      source_updated_at=utc(row.updated_at), **values)
        order.items = [OrderItem(product_id=product_id, quantity=quantity,
                                 unit_price_cents=price) for product_id, quantity, price in items]
        if row.address is not None:
            order.address_enc = ctx.cipher.encrypt(row.address, field="address")
        session.add(order)
        known.remember(ORDER_WITH_ITEMS, order)
        status = Status.CREATED
    else:
        address = _new_address(ctx, row, order)
        changed = assign(order, values)
        if address:
            order.address_enc = None if row.address is None else ctx.cipher.encrypt(
                row.address, field="address")
            changed = True
        if [(item.product_id, item.quantity, item.unit_price_cents)
                for item in order.items] != items:
            _replace_items(session, order, items)
            changed = True
        order.source_updated_at = newest(order.source_updated_at, row.updated_at)
        status = Status.UPDATED if changed else Status.UNCHANGED
    if state is OrderState.DELIVERED and was is not OrderState.DELIVERED \
            and ctx.is_fresh(order.delivered_at):
        session.flush()  # the notice's key names the order's id
        notices.delivered(session, customer_id=customer.id, order_id=order.id, number=number,
                          now=ctx.now)
    return status
