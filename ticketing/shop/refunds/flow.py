"""Refund requests (rules §REF-1): apply → review → process → done or rejected.

Unshipped orders are cancelled and refunded at once; shipped or freshly delivered goods go
through an agent's review and the return of the goods; everything else becomes an after-sales
ticket (``NotEligible`` with ``context['route']``). The rules themselves live in
``ticketing.shop.refunds.rules``; this module loads, locks, validates and writes.

Double submissions are harmless: the same idempotency key returns the same request, and the
order row lock plus the one-active-refund-per-order index let only one request through.
Every real change tells the customer the result (``refund_notices``); a replay tells nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.core import audit
from ticketing.shop import orders
from ticketing.shop.refunds import notices as refund_notices
from ticketing.core.clock import utcnow
from ticketing.core.errors import (
    AgentNotFound,
    AlreadyRefunded,
    Conflict,
    IllegalTransition,
    InvalidAmount,
    NotEligible,
    RefundInProgress,
    RefundNotFound,
    ValidationError,
)
from ticketing.core.i18n import Text
from ticketing.core.settings import schedule_of
from ticketing.core.models import (
    ACTIVE_REFUND_STATES,
    Agent,
    Order,
    OrderItem,
    OrderState,
    Product,
    RefundKind,
    RefundMethod,
    RefundRequest,
    RefundState,
)
from ticketing.shop.refunds.rules import (
    Eligibility,
    RefundReason,
    Route,
    assess,
    check_amount,
    check_key,
    check_reason_text,
    explain_refund,
    parse_method,
    parse_reason,
)

__all__ = [
    "Eligibility", "RefundStatus", "Route", "assess_order", "check_eligibility", "complete",
    "refuse", "request_refund", "review", "status",
]


# --- reading -----------------------------------------------------------------------------------
def _active_refund(session: Session, order: Order) -> RefundRequest | None:
    return session.scalars(
        select(RefundRequest).where(
            RefundRequest.order_id == order.id,
            RefundRequest.state.in_([RefundState(s) for s in ACTIVE_REFUND_STATES]),
        )
    ).first()


def _all_items_returnable(session: Session, order: Order) -> bool:
    excluded = session.scalar(
        select(func.count())
        .select_from(OrderItem)
        .join(Product, Product.id == OrderItem.product_id)
        .where(OrderItem.order_id == order.id, Product.no_reason_return_7d.is_(False))
    )
    return not excluded


def assess_order(session: Session, order: Order, reason: RefundReason | None, now: datetime,
                 timezone: str | None) -> Eligibility:
    """:func:`assess` with what it needs from the database; ``timezone`` None = the shop's."""
    return assess(
        order=order,
        all_items_returnable=_all_items_returnable(session, order),
        active=_active_refund(session, order),
        reason=reason,
        now=now,
        timezone=timezone or schedule_of(session).timezone,
    )


def check_eligibility(
    session: Session,
    *,
    customer_id: int,
    order_number: str,
    reason: RefundReason | str | None = None,
    now: datetime | None = None,
    timezone: str | None = None,
) -> Eligibility:
    """Which route the order would take, so the bot can explain before asking anything.
    Deadlines are shown in ``timezone``, by default the shop's (the session's schedule), the
    same zone :func:`request_refund` and after-sales tickets use."""
    number = orders.parse_order_number(order_number)
    parsed = None if reason is None else parse_reason(reason)
    order = orders.get_order(session, customer_id=customer_id, number=number)
    return assess_order(session, order, parsed, now or utcnow(), timezone)


# --- applying ----------------------------------------------------------------------------------
def _replay(session: Session, key: str, *, customer_id: int, order: Order) -> RefundRequest | None:
    """The request already made with ``key``, if any; a key is never reused across orders."""
    existing = session.scalars(
        select(RefundRequest).where(RefundRequest.idempotency_key == key)
    ).one_or_none()
    if existing is not None and (
        existing.customer_id != customer_id or existing.order_id != order.id
    ):
        raise Conflict("idempotency key already used for another request", field="idempotency_key")
    return existing


def refuse(eligibility: Eligibility, order: Order) -> None:
    """Raise the error a route that cannot take a request stands for."""
    context = {
        "route": eligibility.route.value,
        "order_number": order.number,
        "explanation": eligibility.explanation,
    }
    if eligibility.route is Route.REFUND_IN_PROGRESS:
        raise RefundInProgress(refund_id=eligibility.active_refund_id, **context)
    if (eligibility.route is Route.NOTHING_TO_REFUND and order.paid_cents > 0
            and eligibility.refundable_cents == 0):
        raise AlreadyRefunded(**context)
    raise NotEligible(
        f"order is not eligible: {eligibility.route.value}",
        ticket_category=eligibility.ticket_category,
        **context,
    )


def request_refund(
    session: Session,
    *,
    customer_id: int,
    order_number: str,
    reason: RefundReason | str,
    amount_cents: int | None,
    method: RefundMethod | str,
    idempotency_key: str,
    reason_text: str = "",
    now: datetime | None = None,
) -> RefundRequest:
    """Apply for a refund. ``amount_cents=None`` means everything still refundable.

    Unshipped: the order is cancelled and the refund is done before this returns.
    Return-and-refund: the request waits ``under_review`` for an agent.
    """
    now = now or utcnow()
    number = orders.parse_order_number(order_number)
    parsed_reason = parse_reason(reason)
    parsed_method = parse_method(method)
    key = check_key(idempotency_key)
    reason_text = check_reason_text(parsed_reason, reason_text)

    order = orders.get_order(session, customer_id=customer_id, number=number, lock=True)
    existing = _replay(session, key, customer_id=customer_id, order=order)
    if existing is not None:
        return existing
    eligibility = assess_order(session, order, parsed_reason, now, None)
    if not eligibility.can_request:
        refuse(eligibility, order)
    amount = check_amount(amount_cents, eligibility)

    refund = RefundRequest(
        order_id=order.id,
        customer_id=customer_id,
        idempotency_key=key,
        kind=eligibility.kind,
        state=RefundState.UNDER_REVIEW,
        reason=parsed_reason.value,
        reason_text=reason_text,
        amount_cents=amount,
        method=parsed_method,
        created_at=now,
    )
    try:
        # Backstop for writers the lock did not order (the unique indexes decide): only the
        # savepoint is lost, so the caller's transaction stays usable for the answer below.
        with session.begin_nested():
            session.add(refund)
            session.flush()
    except IntegrityError:
        existing = _replay(session, key, customer_id=customer_id, order=order)
        if existing is not None:
            return existing
        active = _active_refund(session, order)
        raise RefundInProgress(
            refund_id=active.id if active else None,
            route=Route.REFUND_IN_PROGRESS.value,
            order_number=order.number,
        ) from None

    audit.record(
        session, action="refund.requested", actor_type="customer", actor_id=customer_id,
        target_type="refund", target_id=refund.id, now=now,
        details={"order_id": order.id, "kind": refund.kind.value, "reason": refund.reason,
                 "amount_cents": amount, "method": parsed_method.value},
    )
    if refund.kind is RefundKind.CANCEL_AND_REFUND:
        # Auto-approved: nothing to inspect before shipping. A done refund leaves the
        # one-active index, so against a twin cancellation only the order lock protects us.
        refund.reviewed_at = now
        order.state = OrderState.CANCELLED
        order.cancelled_at = now
        _finish(session, refund, order, actor_type="system", actor_id=None, now=now)
    session.flush()
    refund_notices.notify(session, refund=refund, order_number=order.number, now=now)
    return refund


def _finish(session: Session, refund: RefundRequest, order: Order, *, actor_type: str,
            actor_id: int | None, now: datetime) -> None:
    order.refunded_cents += refund.amount_cents
    refund.state = RefundState.DONE
    refund.done_at = now
    audit.record(
        session, action="refund.completed", actor_type=actor_type, actor_id=actor_id,
        target_type="refund", target_id=refund.id, now=now,
        details={"order_id": order.id, "amount_cents": refund.amount_cents,
                 "refunded_cents": order.refunded_cents},
    )


# --- agents --------------------------------------------------------------------------------------
def _load_refund(session: Session, refund_id: int) -> RefundRequest:
    refund = session.scalars(
        select(RefundRequest)
        .where(RefundRequest.id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if refund is None:
        raise RefundNotFound(refund_id=refund_id)
    return refund


def review(
    session: Session,
    *,
    refund_id: int,
    agent_id: int,
    approve: bool,
    note: str = "",
    now: datetime | None = None,
) -> RefundRequest:
    """An agent's decision on a return-and-refund; rejecting needs a reason the customer reads."""
    now = now or utcnow()
    note = (note or "").strip()
    if not approve and not note:
        raise ValidationError("a rejection needs a reason", field="note")
    if session.get(Agent, agent_id) is None:
        raise AgentNotFound(agent_id=agent_id)
    refund = _load_refund(session, refund_id)
    if refund.state is not RefundState.UNDER_REVIEW:
        raise IllegalTransition(f"refund is {refund.state.value}, not under review",
                                refund_id=refund_id, state=refund.state.value)
    refund.state = RefundState.PROCESSING if approve else RefundState.REJECTED
    refund.reviewed_at = now
    refund.reviewed_by = agent_id
    if not approve:
        refund.rejection_reason = note
    audit.record(
        session, action="refund.reviewed", actor_type="agent", actor_id=agent_id,
        target_type="refund", target_id=refund.id, now=now,
        details={"approved": approve, "order_id": refund.order_id, "note": note[:200]},
    )
    session.flush()
    number = session.scalar(select(Order.number).where(Order.id == refund.order_id))
    refund_notices.notify(session, refund=refund, order_number=number or "", now=now)
    return refund


def complete(
    session: Session,
    *,
    refund_id: int,
    agent_id: int | None = None,
    now: datetime | None = None,
) -> RefundRequest:
    """The returned goods arrived: pay the money back and close the request."""
    now = now or utcnow()
    if agent_id is not None and session.get(Agent, agent_id) is None:
        raise AgentNotFound(agent_id=agent_id)
    refund = _load_refund(session, refund_id)
    if refund.state is not RefundState.PROCESSING:
        raise IllegalTransition(f"refund is {refund.state.value}, not processing",
                                refund_id=refund_id, state=refund.state.value)
    order = session.scalars(
        select(Order).where(Order.id == refund.order_id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if refund.amount_cents > order.paid_cents - order.refunded_cents:
        raise InvalidAmount("refund exceeds what is left to refund",
                            refundable_cents=order.paid_cents - order.refunded_cents)
    _finish(session, refund, order, actor_type="agent" if agent_id else "system",
            actor_id=agent_id, now=now)
    session.flush()
    refund_notices.notify(session, refund=refund, order_number=order.number, now=now)
    return refund


# --- customers and managers -------------------------------------------------------------------
@dataclass(frozen=True)
class RefundStatus:
    refund_id: int
    order_number: str
    state: RefundState
    kind: RefundKind
    reason: str
    amount_cents: int
    method: RefundMethod
    created_at: datetime
    explanation: Text


def status(
    session: Session, *, customer_id: int, order_number: str | None = None
) -> list[RefundStatus]:
    """The customer's refunds, newest first, each with a sentence on where it stands."""
    query = (
        select(RefundRequest, Order.number)
        .join(Order, Order.id == RefundRequest.order_id)
        .where(RefundRequest.customer_id == customer_id)
        .order_by(RefundRequest.created_at.desc(), RefundRequest.id.desc())
    )
    if order_number is not None:
        order = orders.get_order(session, customer_id=customer_id, number=order_number)
        query = query.where(RefundRequest.order_id == order.id)
    return [
        RefundStatus(r.id, number, r.state, r.kind, r.reason, r.amount_cents, r.method,
                     r.created_at, explain_refund(r))
        for r, number in session.execute(query).all()
    ]
