"""The worker's dispatch round (rules §DISP-1 "the system dispatches automatically").

People claim tickets by hand first; a ticket still NEW and unowned after
``KEFU_AUTO_ASSIGN_AFTER`` seconds is handed by :func:`ticketing.desk.routing.auto_assign` to the
previous owner of the same order's ticket or the least-loaded free agent of its tier and
category. Urgent tickets go first, then by priority, then the oldest. Each ticket is assigned
in its own transaction, and the claim's conditional UPDATE settles races, so any number of
workers may dispatch at once without assigning a ticket twice. A ticket nobody can take stays
in the queue for the next round (and its SLA timers keep running and alarming).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, case, select
from sqlalchemy.orm import Session, sessionmaker

from ticketing.desk import routing
from ticketing.core.clock import utcnow
from ticketing.core.errors import AlreadyClaimed, ConfigurationError, IllegalTransition
from ticketing.core.models import Priority, Ticket, TicketState

log = logging.getLogger("ticketing.desk.dispatch")

DEFAULT_AFTER = timedelta(seconds=600)

URGENCY = case(
    *((Ticket.priority == priority, rank) for rank, priority in enumerate(
        (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW))),
    else_=4,
)


def after_from_seconds(seconds: float | None) -> timedelta | None:
    """Settings' ``auto_assign_after_seconds`` as the delay :func:`run_once` takes."""
    return None if seconds is None else timedelta(seconds=seconds)


@dataclass
class DispatchReport:
    candidates: int = 0  # waited long enough and were looked at
    dispatched: int = 0
    undispatched: int = 0  # nobody free for them: they stay in the queue
    lost: int = 0  # claimed meanwhile, by a person or another worker
    failed: int = 0  # raised: rolled back, tried again next round

    def add(self, other: DispatchReport) -> None:
        for name in ("candidates", "dispatched", "undispatched", "lost", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def waiting(*, after: timedelta, now: datetime, limit: int, offset: int = 0) -> Select:
    """Unclaimed tickets older than ``after``, most urgent then oldest first.

    The filter on ``state`` uses ``ix_tickets_state``: only the (small) NEW queue is read,
    never the history.
    """
    return (
        select(Ticket.id, Ticket.tier, Ticket.category, Ticket.order_id)
        .where(Ticket.state == TicketState.NEW, Ticket.owner_id.is_(None),
               Ticket.created_at <= now - after)
        .order_by(URGENCY, Ticket.created_at, Ticket.id)
        .limit(limit)
        .offset(offset)
    )


def _still_waiting(session: Session, ticket_id: int) -> bool:
    row = session.execute(
        select(Ticket.owner_id, Ticket.state).where(Ticket.id == ticket_id)
    ).one_or_none()
    return row is not None and row.owner_id is None and row.state is TicketState.NEW


def run_once(
    session_factory: sessionmaker[Session],
    *,
    after: timedelta,
    now: datetime | None = None,
    limit: int = 500,
    offset: int = 0,
) -> DispatchReport:
    """Dispatch up to ``limit`` waiting tickets (skipping the first ``offset``), one
    transaction each. Within a round, a (tier, category) pool found with nobody free is not
    asked again (loads only grow during the round), except for tickets that may still go back
    to a previous owner.
    """
    if after < timedelta(0):
        raise ConfigurationError("the auto-assign delay cannot be negative")
    now = now or utcnow()
    report = DispatchReport()
    with session_factory() as session:
        rows = session.execute(waiting(after=after, now=now, limit=limit, offset=offset)).all()
    report.candidates = len(rows)
    full: set[tuple[int, str]] = set()
    for row in rows:
        pool = (row.tier, row.category)
        if pool in full and row.order_id is None:
            report.undispatched += 1
            continue
        try:
            with session_factory.begin() as session:
                assigned = routing.auto_assign(session, ticket_id=row.id, now=now)
                nobody_free = assigned is None and _still_waiting(session, row.id)
        except (AlreadyClaimed, IllegalTransition):  # another worker or a person got there first
            report.lost += 1
            continue
        except Exception:  # one bad ticket must not stop the round; it stays in the queue
            report.failed += 1
            log.exception("dispatching ticket %s failed; it will be retried", row.id)
            continue
        if assigned is not None:
            report.dispatched += 1
        elif nobody_free:
            report.undispatched += 1
            full.add(pool)
        else:
            report.lost += 1
    return report


def drain(
    session_factory: sessionmaker[Session],
    *,
    after: timedelta,
    now: datetime | None = None,
    batch: int = 500,
    stopping: Callable[[], bool] = lambda: False,
) -> DispatchReport:
    """Run rounds until the whole queue was looked at once. Tickets left waiting stay at the
    head of the order, so each next page starts after them: a head of tickets nobody can take
    never starves the ones behind it.
    """
    total = DispatchReport()
    while True:
        report = run_once(session_factory, after=after, now=now, limit=batch,
                          offset=total.undispatched + total.failed)
        total.add(report)
        if report.candidates < batch or stopping():
            return total
