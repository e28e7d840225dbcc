"""The numbers alerts compare: a rate's numerator and denominator in a recent window and in
the baseline window before it (definitions: :mod:`ticketing.reports.alerts`).

Each figure is one grouped aggregate query, so a 15-minute evaluation stays cheap however many
products or teams there are; the same SQL runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from ticketing.core.models import Order, OrderItem, Product, RefundRequest, SlaTimer, Ticket, TimerStatus
from ticketing.desk.sla import SLA_KINDS

REFUND_DEFINITION = ("refund requests created in the window whose order contains the subject "
                     "/ paid orders placed in the window containing it")
SLA_DEFINITION = ("breached / decided first-response, next-response and resolution timers "
                  "whose deadline fell in the window")


@dataclass(frozen=True)
class Measure:
    """Numerator and denominator of a rate in the recent and the baseline window."""

    events: int
    sample: int
    base_events: int = 0
    base_sample: int = 0

    @property
    def rate(self) -> float | None:
        return self.events / self.sample if self.sample else None

    @property
    def baseline(self) -> float | None:
        return self.base_events / self.base_sample if self.base_sample else None

    def __add__(self, other: Measure) -> Measure:
        return Measure(self.events + other.events, self.sample + other.sample,
                       self.base_events + other.base_events, self.base_sample + other.base_sample)


@dataclass(frozen=True)
class Windows:
    """``[since, split)`` is the baseline window, ``[split, until)`` the recent one."""

    since: datetime  # baseline start
    split: datetime  # baseline end = recent start
    until: datetime  # now

    @classmethod
    def ending(cls, now: datetime, *, recent: timedelta, baseline: timedelta) -> Windows:
        """The recent window ``[now - recent, now)`` and the baseline window just before it."""
        return cls(now - recent - baseline, now - recent, now)

    @property
    def recent_days(self) -> int:
        return (self.until - self.split).days

    @property
    def baseline_days(self) -> int:
        return (self.split - self.since).days

    def details(self) -> dict[str, object]:
        return {"window": [self.split.isoformat(), self.until.isoformat()],
                "baseline_window": [self.since.isoformat(), self.split.isoformat()]}


def refund_measures(session: Session, *, by_product: bool, windows: Windows) -> dict[object, Measure]:
    """Per category (or product id): refund requests created and paid orders placed, both
    counted once per order, in the recent and the baseline window."""
    key = Product.id if by_product else Product.category
    recent_refund = RefundRequest.created_at >= windows.split
    refunds = session.execute(
        select(key,
               func.count(case((recent_refund, RefundRequest.id)).distinct()),
               func.count(case((~recent_refund, RefundRequest.id)).distinct()))
        .select_from(RefundRequest)
        .join(OrderItem, OrderItem.order_id == RefundRequest.order_id)
        .join(Product, Product.id == OrderItem.product_id)
        .where(RefundRequest.created_at >= windows.since, RefundRequest.created_at < windows.until)
        .group_by(key)
    ).all()
    recent_order = Order.created_at >= windows.split
    orders = session.execute(
        select(key,
               func.count(case((recent_order, Order.id)).distinct()),
               func.count(case((~recent_order, Order.id)).distinct()))
        .select_from(Order)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .join(Product, Product.id == OrderItem.product_id)
        .where(Order.paid_at.is_not(None), Order.created_at >= windows.since,
               Order.created_at < windows.until)
        .group_by(key)
    ).all()
    found: dict[object, Measure] = {}
    for k, recent, base in refunds:
        found[k] = Measure(recent, 0, base, 0)
    for k, recent, base in orders:
        found[k] = found.get(k, Measure(0, 0)) + Measure(0, recent, 0, base)
    return found


def sla_measures(session: Session, *, windows: Windows) -> dict[int | None, Measure]:
    """Per ticket team: breached and decided SLA timers whose deadline fell in each window."""
    breached = or_(SlaTimer.breached_at.is_not(None), SlaTimer.status == TimerStatus.ACTIVE,
                   SlaTimer.completed_at > SlaTimer.deadline_at)
    recent = SlaTimer.deadline_at >= windows.split
    older = SlaTimer.deadline_at < windows.split
    rows = session.execute(
        select(Ticket.team_id,
               func.count(case((and_(recent, breached), 1))), func.count(case((recent, 1))),
               func.count(case((and_(older, breached), 1))), func.count(case((older, 1))))
        .select_from(SlaTimer)
        .join(Ticket, Ticket.id == SlaTimer.ticket_id)
        .where(SlaTimer.kind.in_(SLA_KINDS), SlaTimer.status != TimerStatus.PAUSED,
               SlaTimer.deadline_at >= windows.since, SlaTimer.deadline_at < windows.until)
        .group_by(Ticket.team_id)
    ).all()
    return {team_id: Measure(*counts) for team_id, *counts in rows}
