"""Refunds the shop made or is making (rules §REF-1, §REF-3), so the bot can explain them.

Keyed by the shop's external id (the request's idempotency key becomes ``shop:<id>``). States
move forward (``flows.REFUND_FLOW``); an order has at most one refund under way; the money
actually refunded for an order never exceeds what was paid. A rejection needs the reason the
customer reads. The order's own ``refunded_cents`` stays what the order rows say. When a
refund is done the customer is told, once (rules §REF-2), with the refund flow's own words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from ticketing.core.errors import (
    IllegalTransition,
    RefundExceedsPaid,
    RefundInProgress,
    ValidationError,
)
from ticketing.core.models import (
    ACTIVE_REFUND_STATES,
    Order,
    OrderState,
    RefundKind,
    RefundMethod,
    RefundRequest,
    RefundState,
)
import ticketing.shop.ingest.notices as notices
from ticketing.shop.ingest.change import Context, Status, assign, is_stale, newest, utc
from ticketing.shop.ingest.flows import REFUND_FLOW
from ticketing.shop.ingest.lookups import ORDER, ORDER_REFUNDS, REFUND, Lookups, number_or_none
from ticketing.shop.ingest.rows import RefundRow
from ticketing.shop.ingest.shipments import order_by_number
from ticketing.shop.refunds.rules import RefundReason, check_reason_text, explain_refund

KEY_PREFIX = "shop:"
_UNSHIPPED = (OrderState.PENDING_PAYMENT, OrderState.PAID, OrderState.CANCELLED)


def preload(known: Lookups, rows: Sequence[RefundRow], ctx: Context) -> None:
    """The batch's refunds and orders (both locked, as the row-by-row reads locked them), and
    every refund of those orders (for the money rules)."""
    known.preload(REFUND, (row.external_id for row in rows))
    numbers = [number_or_none(row.order) for row in rows]
    known.preload(ORDER, numbers)
    orders = (known.one(ORDER, number) for number in numbers if number is not None)
    known.preload(ORDER_REFUNDS, (order.id for order in orders if order is not None))


def _check_money(known: Lookups, order: Order, row: RefundRow, refund: RefundRequest | None,
                 state: RefundState) -> None:
    if row.amount_cents > order.paid_cents:
        raise RefundExceedsPaid(f"amount_cents exceeds the order's paid_cents {order.paid_cents}",
                                field="amount_cents")
    others = [other for other in known.many(ORDER_REFUNDS, order.id) if other is not refund]
    done_elsewhere = sum(other.amount_cents for other in others
                         if other.state is RefundState.DONE)
    if state is RefundState.DONE and done_elsewhere + row.amount_cents > order.paid_cents:
        raise RefundExceedsPaid("the order's refunds together exceed what was paid",
                                field="amount_cents")
    if state.value in ACTIVE_REFUND_STATES and any(
            other.state.value in ACTIVE_REFUND_STATES for other in others):
        raise RefundInProgress("the order has another refund under way", field="state")


def _values(row: RefundRow, order: Order, state: RefundState, refund: RefundRequest | None
            ) -> dict[str, Any]:
    reason = RefundReason(row.reason)
    if state is RefundState.REJECTED and not row.rejection_reason:
        raise ValidationError("rejection_reason is required when rejected",
                              field="rejection_reason")
    kind = RefundKind(row.kind) if row.kind else (
        refund.kind if refund is not None else
        RefundKind.CANCEL_AND_REFUND if order.state in _UNSHIPPED else
        RefundKind.RETURN_AND_REFUND)
    done_at = refund.done_at if refund is not None else None
    if state is RefundState.DONE:
        done_at = utc(row.done_at) if row.done_at is not None else done_at or utc(row.updated_at)
    return {
        "state": state, "amount_cents": row.amount_cents, "reason": reason.value,
        "reason_text": check_reason_text(reason, row.reason_text), "kind": kind,
        "method": RefundMethod(row.method), "done_at": done_at,
        "rejection_reason": row.rejection_reason or None,
    }


def upsert_refund(session: Session, row: RefundRow, *, ctx: Context, known: Lookups) -> Status:
    """Create or update one refund; tells the customer when it is done. Everything that can
    refuse the row is checked before the first change."""
    refund = known.one(REFUND, row.external_id)
    if refund is not None and is_stale(refund.source_updated_at, row.updated_at):
        return Status.STALE
    order = order_by_number(known, row.order)
    if refund is not None and refund.order_id != order.id:
        raise IllegalTransition("a refund cannot move to another order", field="order")
    state = RefundState(row.state)
    was = refund.state if refund is not None else None
    if was is not None:
        REFUND_FLOW.check(was, state)
    values = _values(row, order, state, refund)
    _check_money(known, order, row, refund, state)
    if refund is None:
        refund = RefundRequest(
            order_id=order.id, customer_id=order.customer_id, external_id=row.external_id,
            idempotency_key=KEY_PREFIX + row.external_id, source_updated_at=utc(row.updated_at),
            created_at=utc(row.created_at or row.updated_at), **values)
        session.add(refund)
        known.remember(REFUND, refund)
        known.remember(ORDER_REFUNDS, refund)
        status = Status.CREATED
    else:
        changed = assign(refund, values)
        refund.source_updated_at = newest(refund.source_updated_at, row.updated_at)
        status = Status.UPDATED if changed else Status.UNCHANGED
    if state is RefundState.DONE and was is not RefundState.DONE and ctx.is_fresh(refund.done_at):
        session.flush()  # the notice's key names the refund's id
        notices.tell_once(
            session, customer_id=order.customer_id, event_key=f"refund:{refund.id}:done",
            kind=notices.REFUND, render=lambda lang: explain_refund(refund).get(lang),
            payload={"refund_id": refund.id, "order_number": order.number, "state": "done",
                     "amount_cents": refund.amount_cents}, now=ctx.now)
    return status
