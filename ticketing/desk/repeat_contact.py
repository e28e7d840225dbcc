"""A customer who has to come back is served sooner: repeated contact raises priority.

Coming back about a problem that was "solved", or opening a second ticket within days of the
last about the same kind of problem, means the first answer did not hold; the customer is
already more frustrated than the words of the new message show. So a ticket reopened by the
customer, and a new ticket from a customer who opened another of the same category within
``REPEAT_WINDOW``, go one priority step up (never above
urgent; rules §TIER-2). The change is a ticket event, so the desk shows why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketing.core.models import Category, Ticket
from ticketing.desk.lifecycle import record_event
from ticketing.desk.triage import raise_priority

REPEAT_WINDOW = timedelta(days=7)
REASON_REOPENED = "repeat_contact:reopened"
REASON_RECENT = "repeat_contact:recent_ticket"


def recent_tickets(session: Session, *, customer_id: int, category: Category, now: datetime,
                   window: timedelta = REPEAT_WINDOW) -> int:
    """How many tickets of ``category`` the customer opened within ``window`` before ``now``."""
    return int(session.scalar(
        select(func.count()).select_from(Ticket)
        .where(Ticket.customer_id == customer_id, Ticket.category == category,
               Ticket.created_at >= now - window, Ticket.created_at <= now)) or 0)


def raise_for_repeat(session: Session, *, ticket: Ticket, reason: str, now: datetime) -> bool:
    """One step up for a repeated contact, recorded as a ``priority_raised`` event; False when
    the ticket is already urgent."""
    before = ticket.priority
    after = raise_priority(before)
    if after == before:
        return False
    ticket.priority = after
    record_event(session, ticket=ticket, kind="priority_raised", actor_type="system",
                 from_value=before, to_value=after, reason=reason, now=now)
    return True
