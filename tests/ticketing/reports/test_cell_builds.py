"""Building the day cells: which days, nothing lost to a change made during a build, one
builder per day, the reports job's round (PostgreSQL; SQLite shops build nothing)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.reports.builders import H, ticket, utc
from ticketing.core.db import make_session_factory
from ticketing.core.models import ReportCell, ReportDay, ReportMark
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import ScheduleSettings
from ticketing.desk import facts
from ticketing.reports import cell_builds, cells, jobs
from ticketing.reports.scope import Filters, Period

NOW = utc(2026, 3, 9, 3)  # 9 March, 11:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _tickets(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:
        customer = Factory(s, PiiCipher(TEST_KEY)).customer()
        ticket(s, customer, created=utc(2026, 3, 6, 4), messages=[(H, "agent")])
        ticket(s, customer, created=utc(2026, 3, 8, 4))


def _marks(s: Session, day: str) -> int:
    return s.scalar(select(func.count()).select_from(ReportMark).where(ReportMark.day == day))


def test_every_day_from_the_first_ticket_to_today_is_built_once(
        pg_engine, session_factory: sessionmaker[Session]) -> None:
    _tickets(session_factory)
    with session_factory() as s:
        assert cell_builds.days_to_build(s, today=date(2026, 3, 9), zone=SHANGHAI) == [
            "2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09"]
    run = cell_builds.build(session_factory, now=NOW)
    assert (run.days, run.skipped) == (4, 0)
    with session_factory() as s:
        assert cell_builds.days_to_build(s, today=date(2026, 3, 9), zone=SHANGHAI) == []
        assert s.scalar(select(func.count()).select_from(ReportDay)) == 4  # empty days too
        assert sorted(s.scalars(select(ReportCell.day).distinct())) == ["2026-03-06",
                                                                       "2026-03-08"]
    assert cell_builds.build(session_factory, now=NOW).days == 0


def test_a_change_committed_during_a_build_keeps_its_mark(
        pg_engine, session_factory: sessionmaker[Session], monkeypatch) -> None:
    _tickets(session_factory)
    real = cell_builds.cells_of_facts
    calls = []

    def with_a_change_meanwhile(window):
        calls.append(window)
        if len(calls) == 1:  # building 6 March (oldest first): another transaction changes it
            with session_factory.begin() as other:
                other.execute(insert(ReportMark), [{"day": "2026-03-06"}])
        return real(window)

    monkeypatch.setattr(cell_builds, "cells_of_facts", with_a_change_meanwhile)
    cell_builds.build(session_factory, now=NOW)
    with session_factory() as s:
        assert _marks(s, "2026-03-06") == 1  # the build deleted only the marks it had read
        assert cells.changed_days(s, ["2026-03-06", "2026-03-08"]) == {"2026-03-06"}
    monkeypatch.setattr(cell_builds, "cells_of_facts", real)
    cell_builds.build(session_factory, now=NOW)
    with session_factory() as s:
        assert cells.changed_days(s, ["2026-03-06", "2026-03-08"]) == set()


def test_a_day_another_builder_holds_is_skipped(
        pg_engine, session_factory: sessionmaker[Session]) -> None:
    _tickets(session_factory)
    with session_factory.begin() as holder:  # another builder in the middle of 8 March
        holder.execute(select(func.pg_advisory_xact_lock(
            cell_builds._LOCK, date(2026, 3, 8).toordinal())))
        run = cell_builds.build(session_factory, now=NOW)
    assert (run.days, run.skipped) == (3, 1)
    with session_factory() as s:
        assert cells.changed_days(s, ["2026-03-07", "2026-03-08"]) == {"2026-03-08"}


def test_each_round_of_the_reports_job_builds_the_cells(
        engine, session_factory: sessionmaker[Session]) -> None:
    _tickets(session_factory)
    run = jobs.build_cells(session_factory, now=NOW)
    postgres = engine.dialect.name == "postgresql"
    assert run is not None and (run.days > 0) == postgres  # SQLite shops read the facts
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(ReportMark)) == 0


def test_a_time_zone_change_forgets_every_built_day(
        pg_engine, session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as s:  # 5 March 20:00 UTC: 6 March in Shanghai, 5 in UTC
        ticket(s, Factory(s, PiiCipher(TEST_KEY)).customer(), created=utc(2026, 3, 5, 20))
    cell_builds.build(session_factory, now=NOW)
    in_utc = make_session_factory(pg_engine, schedule=ScheduleSettings(timezone="UTC"))
    facts.rebuild(in_utc)  # the shop moved to UTC: the ticket is 5 March's now
    span = Period.of_days(date(2026, 3, 5), date(2026, 3, 6), "UTC")
    with in_utc() as s:  # 6 March's old cell is not counted beside 5 March's ticket
        assert cells.changed_days(s, ["2026-03-05", "2026-03-06"]) == {"2026-03-05",
                                                                      "2026-03-06"}
        stats = cells.ticket_stats(s, span, Filters(), "day", now=NOW, durations=())
        assert {day: one.tickets for day, one in stats.items()} == {"2026-03-05": 1}
    cell_builds.build(in_utc, now=NOW)
    with in_utc() as s:
        stats = cells.ticket_stats(s, span, Filters(), "day", now=NOW, durations=())
        assert {day: one.tickets for day, one in stats.items()} == {"2026-03-05": 1}
