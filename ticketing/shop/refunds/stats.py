"""Refund figures for managers: high-frequency reasons (rules §REF-6) and repeated refunds (§REF-7).

Kept apart from ``ticketing.shop.refunds.flow`` (which re-exports them) because they only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.core.errors import ValidationError
from ticketing.core.i18n import Text
from ticketing.core.models import RefundRequest, RefundState
from ticketing.shop.refunds.rules import REASON_LABELS, RefundReason


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    label: Text
    requests: int
    refunded_cents: int  # money actually paid back for this reason


def refund_reason_stats(session: Session, *, since: datetime, until: datetime) -> list[ReasonCount]:
    """Requests per reason in [since, until), most frequent first (rules §REF-6 manager report)."""
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
    """Customers with ``threshold`` or more refund requests since ``since`` (rules §REF-7 alert)."""
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
