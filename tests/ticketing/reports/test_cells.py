"""The dashboard's day cells give exactly the facts' figures (PostgreSQL): before any build
(every day read from the facts), after a build (stored cells), with a day changed since
(stored and live cells in one statement) and after the next build; for the whole period, the
one before, per day, ISO week, agent and team, unfiltered and filtered by agent and team.

The tickets are generated (seeded) across 16 local days of a Shanghai shop: owners in two
teams and none, answered and unanswered waits, solves and reopens, escalations, first-response
and resolution clocks met, breached, paused and running past or before "now".
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.reports.builders import H, ticket, utc
from ticketing.core.models import ReportCell, ReportDay, ReportMark, TicketMessage
from ticketing.core.models import Category, TicketState, TimerKind, TimerStatus
from ticketing.core.pii import PiiCipher
from ticketing.reports import cell_builds, cells, metrics
from ticketing.reports.aggregates import TicketStats
from ticketing.reports.durations import ALL_DURATIONS
from ticketing.reports.scope import Filters, Period
from ticketing.reports.tallies import ticket_stats, window_stats

NOW = utc(2026, 3, 9, 3)
PERIOD = Period.of_days(date(2026, 3, 2), date(2026, 3, 9), "Asia/Shanghai")
KEYS = {"day": metrics.TicketFact.created_day, "agent": metrics.TicketFact.owner_id,
        "team": metrics.TicketFact.team_id, "category": metrics.TicketFact.category}


@pytest.fixture
def shop(pg_engine, session_factory: sessionmaker[Session]) -> dict[str, object]:
    rng = random.Random(11)
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        teams = [make.team(code="front"), make.team(code="back", tier=2)]
        agents = [make.agent(team=teams[i % 2], name=f"A{i}") for i in range(4)]
        customers = [make.customer() for _ in range(5)]
        start = utc(2026, 2, 21, 20)
        for i in range(90):
            created = start + timedelta(minutes=rng.randrange(16 * 24 * 60))
            messages = [(timedelta(minutes=rng.randrange(1, 3000)), rng.choice(
                ("customer", "agent", "agent", "note"))) for _ in range(rng.randrange(5))]
            solved = rng.random() < 0.6
            events = [(timedelta(hours=rng.randrange(1, 90)), "state", "solved")] if solved \
                else []
            if rng.random() < 0.2:
                events.append((timedelta(hours=1), "escalated", None))
            timers = [(TimerKind.FIRST_RESPONSE, rng.choice(list(TimerStatus)),
                       timedelta(hours=rng.choice((1, 8, 24, 400))),
                       timedelta(hours=rng.randrange(1, 30)) if rng.random() < 0.5 else None,
                       rng.random() < 0.3),
                      (TimerKind.RESOLUTION, rng.choice(list(TimerStatus)),
                       timedelta(hours=rng.choice((24, 72, 900))), None, False)]
            ticket(s, customers[i % 5], created=created + timedelta(seconds=i),
                   owner=rng.choice([*agents, None]), messages=sorted(messages),
                   category=rng.choice(list(Category)),
                   events=events, timers=timers,
                   state=TicketState.SOLVED if solved else TicketState.OPEN,
                   reopen_count=int(solved and rng.random() < 0.3))
        return {"agents": [a.id for a in agents], "teams": [t.id for t in teams]}


def _facts(s: Session, period: Period, filters: Filters, group: str) -> dict[object, TicketStats]:
    window = [metrics.TicketFact.created_at >= period.since,
              metrics.TicketFact.created_at < period.until]
    if group == "all":
        return window_stats(s, {None: window}, filters, now=NOW)
    rekey = metrics.iso_week if group == "week" else None
    return ticket_stats(s, KEYS.get(group, metrics.TicketFact.created_day), window, filters,
                        now=NOW, rekey=rekey,
                        durations=() if group == "category" else ALL_DURATIONS)


def _same(s: Session, shop: dict[str, object]) -> int:
    """Every question asked both ways; returns how many figures were compared."""
    agents, teams = shop["agents"], shop["teams"]
    compared = 0
    for filters in (Filters(), Filters(agents=(agents[0], None)), Filters(teams=(teams[1],)),
                    Filters(agents=(agents[1],), teams=(teams[1],))):
        for period in (PERIOD, PERIOD.previous()):
            by_category = _facts(s, period, filters, "category")
            assert cells.category_counts(s, period, filters) == {
                k: v.tickets for k, v in by_category.items()}
            for group in cells.GROUPS:
                want = _facts(s, period, filters, group)
                got = cells.ticket_stats(s, period, filters, group, now=NOW,
                                         durations=ALL_DURATIONS)
                assert set(got) == {k for k, v in want.items() if v.tickets}, (filters, group)
                for key, one in got.items():
                    other = want[key]
                    assert (one.tickets, one.escalated, one.solved, one.reopened,
                            one.handed_off, one.unanswered, one.sla) == (
                        other.tickets, other.escalated, other.solved, other.reopened,
                        other.handed_off, other.unanswered, other.sla), (filters, group, key)
                    for name in ALL_DURATIONS:
                        assert one.duration(name) == other.duration(name) or (
                            one.duration(name).n == other.duration(name).n == 0), (
                            filters, group, key, name)
                    compared += 1
    return compared


def test_cells_give_the_facts_figures_live_stored_and_mixed(
        shop: dict[str, object], session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(ReportMark)) > 0  # the facts marked
        days = [d.isoformat() for d in PERIOD.days()]
        assert cells.changed_days(s, days) == set(days)  # nothing built: all read live
        assert _same(s, shop) > 100

    run = cell_builds.build(session_factory, now=NOW)
    assert run.days >= 16 and run.skipped == 0
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(ReportMark)) == 0
        assert s.scalar(select(func.count()).select_from(ReportCell)) > 0
        assert cells.changed_days(s, days) == set()  # every day stored
        _same(s, shop)

    with session_factory.begin() as s:  # an agent answers a ticket of 4 March
        changed = s.scalars(select(metrics.TicketFact.ticket_id).where(
            metrics.TicketFact.created_day == "2026-03-04",
            metrics.TicketFact.first_response_at.is_(None))).first()
        s.add(TicketMessage(ticket_id=changed, at=utc(2026, 3, 8, 1), author_type="agent",
                            body="…", internal=False))
    with session_factory() as s:
        assert cells.changed_days(s, days) == {"2026-03-04"}
        _same(s, shop)
    assert cell_builds.build(session_factory, now=NOW).days == 1
    with session_factory() as s:
        assert cells.changed_days(s, days) == set()
        _same(s, shop)


def test_the_dashboard_reads_cells_for_owner_filters_and_facts_for_the_rest(
        shop: dict[str, object], session_factory: sessionmaker[Session], engine) -> None:
    with session_factory() as s:
        assert cells.serves(s, Filters(agents=(1,), teams=(2,)))
        assert not cells.serves(s, Filters(categories=("logistics",)))
        assert not cells.serves(s, Filters(), "category")
    cell_builds.build(session_factory, now=NOW)
    with session_factory() as s:  # a filter the cells cannot answer still gets its figures
        by_category = Filters(categories=("logistics",))
        summary = metrics.summary(s, PERIOD, by_category, now=NOW)
        assert summary.tickets.tickets == _facts(s, PERIOD, by_category, "all")[None].tickets
    with session_factory.begin() as s:
        s.execute(ReportDay.__table__.delete())
    with session_factory() as s:  # days not built are read from the facts
        assert metrics.summary(s, PERIOD, Filters(), now=NOW).tickets.tickets == \
            _facts(s, PERIOD, Filters(), "all")[None].tickets


def test_medians_interpolate_as_percentile_cont() -> None:
    import struct

    def packed(*values: float) -> bytes:
        return struct.pack(f">{len(values)}d", *values)

    assert cells.distribution(None).n == 0
    one = cells.distribution(packed(7.0))
    assert (one.n, one.median, one.p90) == (1, 7.0, 7.0)
    # 1..10 shuffled: median at position 4.5 -> 5.5; p90 at 8.1 -> 9.1
    ten = cells.distribution(packed(3, 9, 1, 10, 2, 8, 4, 7, 6, 5))
    assert ten.n == 10 and ten.median == 5.5 and ten.p90 == pytest.approx(9.1)
