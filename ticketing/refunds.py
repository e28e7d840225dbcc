"""Refund requests (SPEC 4.3): apply → review → process → done or rejected.

Unshipped orders are cancelled and refunded at once; shipped or freshly delivered goods go
through an agent's review and the return of the goods; everything else becomes an after-sales
ticket (``NotEligible`` with ``context['route']``). The rules themselves live in
``ticketing.refund_rules``; this module loads, locks, validates and writes.

Double submissions are harmless: the same idempotency key returns the same request, and the
order row lock plus the one-active-refund-per-order index let only one request through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing import audit, orders
from ticketing.clock import utcnow
from ticketing.errors import (
    AgentNotFound,
    AlreadyRefunded,
    Conflict,
    IllegalTransition,
    InvalidAmount,
    NotEligible,
    OrderNotFound,
    RefundInProgress,
    RefundNotFound,
    ValidationError,
)
from ticketing.i18n import Text
from ticketing.models import (
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
from ticketing.refund_rules import (
    REASON_LABELS,
    SHOP_TIMEZONE,
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


# --- reading -----------------------------------------------------------------------------------
def _load_order(session: Session, *, customer_id: int, number: str, lock: bool) -> Order:
    """The customer's order; someone else's is as missing as a wrong number."""
    query = select(Order).where(Order.number == number, Order.customer_id == customer_id)
    if lock:
        # The lock serialises every refund decision for this order; populate_existing makes
        # sure we judge the row as it is after the lock, not a stale copy in the session.
        query = query.with_for_update().execution_options(populate_existing=True)
    order = session.scalars(query).one_or_none()
    if order is None:
        raise OrderNotFound(order_number=number)
    return order


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


def _assess(session: Session, order: Order, reason: RefundReason | None, now: datetime,
            timezone: str) -> Eligibility:
    return assess(
        order=order,
        all_items_returnable=_all_items_returnable(session, order),
        active=_active_refund(session, order),
        reason=reason,
        now=now,
        timezone=timezone,
    )


def check_eligibility(
    session: Session,
    *,
    customer_id: int,
    order_number: str,
    reason: RefundReason | str | None = None,
    now: datetime | None = None,
    timezone: str = SHOP_TIMEZONE,
) -> Eligibility:
    """Which route the order would take, so the bot can explain before asking anything."""
    number = orders.parse_order_number(order_number)
    parsed = None if reason is None else parse_reason(reason)
    order = _load_order(session, customer_id=customer_id, number=number, lock=False)
    return _assess(session, order, parsed, now or utcnow(), timezone)


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


def _refuse(eligibility: Eligibility, order: Order) -> None:
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

    order = _load_order(session, customer_id=customer_id, number=number, lock=True)
    existing = _replay(session, key, customer_id=customer_id, order=order)
    if existing is not None:
        return existing
    eligibility = _assess(session, order, parsed_reason, now, SHOP_TIMEZONE)
    if not eligibility.can_request:
        _refuse(eligibility, order)
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
        order = _load_order(session, customer_id=customer_id,
                            number=orders.parse_order_number(order_number), lock=False)
        query = query.where(RefundRequest.order_id == order.id)
    return [
        RefundStatus(r.id, number, r.state, r.kind, r.reason, r.amount_cents, r.method,
                     r.created_at, explain_refund(r))
        for r, number in session.execute(query).all()
    ]


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    label: Text
    requests: int
    refunded_cents: int  # money actually paid back for this reason


def refund_reason_stats(session: Session, *, since: datetime, until: datetime) -> list[ReasonCount]:
    """Requests per reason in [since, until), most frequent first (SPEC 4.3 manager report)."""
    done = func.sum(func.coalesce(RefundRequest.amount_cents, 0)).filter(
        RefundRequest.state == RefundState.DONE
    )
    rows = session.execute(
        select(RefundRequest.reason, func.count(), done)
        .where(RefundRequest.created_at >= since, RefundRequest.created_at < until)
        .group_by(RefundRequest.reason)
    ).all()
    counts = [
        ReasonCount(reason, _label(reason), n, int(paid or 0)) for reason, n, paid in rows
    ]
    return sorted(counts, key=lambda c: (-c.requests, c.reason))


def _label(code: str) -> Text:
    try:
        return REASON_LABELS[RefundReason(code)]
    except ValueError:
        return Text(code, code)


@dataclass(frozen=True)
class RepeatedRefunds:
    customer_id: int
    requests: int
    amount_cents: int


def customers_with_repeated_refunds(
    session: Session, *, since: datetime, threshold: int = 3, until: datetime | None = None
) -> list[RepeatedRefunds]:
    """Customers with ``threshold`` or more refund requests since ``since`` (SPEC 4.4 alert)."""
    if threshold < 1:
        raise ValidationError("threshold must be at least 1", field="threshold")
    query = (
        select(RefundRequest.customer_id, func.count(), func.sum(RefundRequest.amount_cents))
        .where(RefundRequest.created_at >= since)
        .group_by(RefundRequest.customer_id)
        .having(func.count() >= threshold)
    )
    if until is not None:
        query = query.where(RefundRequest.created_at < until)
    rows = session.execute(query).all()
    found = [RepeatedRefunds(cid, n, int(total or 0)) for cid, n, total in rows]
    return sorted(found, key=lambda r: (-r.requests, r.customer_id))
