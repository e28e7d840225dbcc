"""Building the dashboard's day cells (:mod:`ticketing.reports.cells`) from the facts.

A day is built in a transaction of its own: its marks are read first, then its cells are
replaced by the facts' (the same statement the dashboard uses for a changed day), the day is
recorded as built and exactly the marks read are deleted. A fact changed meanwhile leaves a
mark this build did not read, so the day stays changed and is read from the facts until the
next build: nothing is lost between the two reads. One builder per day at a time (an
advisory lock; another builder skips the day), so any number of report jobs may run.
PostgreSQL only: SQLite shops read the facts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select, text, union_all
from sqlalchemy.orm import Session, sessionmaker

from ticketing.core.clock import aware, utcnow
from ticketing.core.models import ReportCell, ReportDay, ReportMark, TicketFact
from ticketing.core.settings import schedule_of
from ticketing.desk.upsert import upsert
from ticketing.reports.cells import cells_of_facts, stored_names
from ticketing.reports.durations import in_postgres
from ticketing.reports.scope import Period

log = logging.getLogger(__name__)

_LOCK = 0x6B656675  # "kefu": the advisory lock space of the cell builds (day number within)


@dataclass(frozen=True)
class CellBuild:
    days: int  # days built
    skipped: int  # days another builder was building
    seconds: float


def days_to_build(session: Session, *, today: date, zone: ZoneInfo) -> list[str]:
    """Days with marks, and days from the first ticket's to ``today`` never built; oldest
    first. (The first ticket by ``created_at``, which is indexed.)"""
    marked = set(session.scalars(select(ReportMark.day).distinct()))
    first = session.scalar(select(func.min(TicketFact.created_at)))
    missing: set[str] = set()
    if first is not None:
        built = set(session.scalars(select(ReportDay.day)))
        day = aware(first).astimezone(zone).date()
        while day <= today:
            if day.isoformat() not in built:
                missing.add(day.isoformat())
            day += timedelta(days=1)
    return sorted(marked | missing)


def build_day(session: Session, day: str, zone: ZoneInfo, *, now: datetime) -> bool:
    """Replace ``day``'s cells by its facts' (in the caller's transaction); False when another
    builder holds the day."""
    if not session.scalar(select(func.pg_try_advisory_xact_lock(_LOCK, _number(day)))):
        return False
    marks = list(session.scalars(select(ReportMark.id).where(ReportMark.day == day)))
    local = date.fromisoformat(day)
    span = Period.of_days(local, local, zone)
    window = [TicketFact.created_at >= span.since, TicketFact.created_at < span.until]
    session.execute(delete(ReportCell).where(ReportCell.day == day))
    session.execute(insert(ReportCell).from_select(stored_names(),
                                                   cells_of_facts(window)))
    upsert(session, ReportDay, [{"day": day, "built_at": now}], ["day"])
    if marks:
        session.execute(delete(ReportMark).where(ReportMark.id.in_(marks)))
    return True


def build(session_factory: sessionmaker[Session], *, now: datetime | None = None,
          limit: int | None = None) -> CellBuild:
    """Build every day that needs it (``limit``: at most that many, oldest first)."""
    started = time.monotonic()
    now = now or utcnow()
    with session_factory() as session:
        if not in_postgres(session):
            return CellBuild(0, 0, 0.0)
        zone = ZoneInfo(schedule_of(session).timezone)
        days = days_to_build(session, today=now.astimezone(zone).date(), zone=zone)
    built = skipped = 0
    for day in days[:limit]:
        with session_factory.begin() as session:
            session.execute(text("SET LOCAL work_mem = '64MB'"))
            if build_day(session, day, zone, now=now):
                built += 1
            else:
                skipped += 1
    run = CellBuild(built, skipped, time.monotonic() - started)
    if built:
        log.info("report cells: %d days built in %.1f s", built, run.seconds)
    return run


def _number(day: str) -> int:
    return date.fromisoformat(day).toordinal()
