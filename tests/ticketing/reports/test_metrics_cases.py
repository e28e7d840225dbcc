"""Edge cases of the metric definitions (docs/metrics.md) on hand-built tickets and surveys:
the satisfied boundary, half-open windows, grouping by agent, team, category, channel, local
day and ISO week, and SLA verdicts on and past a deadline. Every expected figure is worked out
in the comments. (Ported from the tests of the desk's former statistics module.)

As in test_metrics.py the shop is in Shanghai (UTC+8), the period is Mon 2 – Sun 8 March 2026
(local days: ``[1 Mar 16:00, 8 Mar 16:00)`` UTC), the one before it 23 Feb – 1 Mar, and "now"
is 9 March 00:00 UTC. Rows are written in a committed transaction: the facts follow at commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.reports.builders import H, survey, ticket, utc
from ticketing.core.db import make_session_factory
from ticketing.core.errors import ValidationError
from ticketing.core.models import Category, Channel, TimerKind, TimerStatus
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import ScheduleSettings
from ticketing.desk import facts
from ticketing.reports import metrics
from ticketing.reports.scope import Filters, Period

NOW = utc(2026, 3, 9)
PERIOD = Period.of_days(date(2026, 3, 2), date(2026, 3, 8), "Asia/Shanghai")
FR, RES = TimerKind.FIRST_RESPONSE, TimerKind.RESOLUTION
ACTIVE, PAUSED, DONE = TimerStatus.ACTIVE, TimerStatus.PAUSED, TimerStatus.DONE
NOON = utc(2026, 3, 4, 4)  # Wednesday 4 March, 12:00 in Shanghai


def instants(start: datetime = NOON) -> Iterator[datetime]:
    """A minute apart: the builders number a customer's tickets by their creation time."""
    minute = 0
    while True:
        yield start + timedelta(minutes=minute)
        minute += 1


def rated(s: Session, make: Factory, scores: list[int | None], *, agent=None,
          category: Category = Category.LOGISTICS, channel: Channel = Channel.WIDGET,
          start: datetime = NOON) -> None:
    """One ticket per score, owned by ``agent`` and surveyed (credited to ``agent``) an hour
    after it was created."""
    customer = make.customer()
    for created, score in zip(instants(start), scores):
        t = ticket(s, customer, created=created, owner=agent, category=category,
                   channel=channel)
        survey(s, t, sent=created + H, score=score, agent=agent)


# --- satisfaction -----------------------------------------------------------------------------
def test_csat_counts_only_4_and_5_as_satisfied(
        session_factory: sessionmaker[Session], session: Session) -> None:
    with session_factory.begin() as s:
        rated(s, Factory(s, PiiCipher(TEST_KEY)), [5, 4, 3, 1, 5, None, None])
    got = metrics.summary(session, PERIOD, Filters(), now=NOW).csat
    assert (got.sent, got.responses) == (7, 5)  # 7 surveys sent, 2 unanswered
    assert got.csat_pct == pytest.approx(60.0)  # (5, 4, 5) = 3 of 5 answered; the 3 is not
    assert got.average == pytest.approx(3.6)  # (5 + 4 + 3 + 1 + 5) / 5 = 18 / 5
    assert got.response_rate_pct == pytest.approx(100 * 5 / 7)  # 71.43 %
    assert got.distribution == {1: 1, 2: 0, 3: 1, 4: 1, 5: 2}


def test_surveys_sent_but_unanswered_give_a_zero_rate_and_no_csat(
        session_factory: sessionmaker[Session], session: Session) -> None:
    with session_factory.begin() as s:
        rated(s, Factory(s, PiiCipher(TEST_KEY)), [None, None])
    got = metrics.summary(session, PERIOD, Filters(), now=NOW).csat
    assert (got.sent, got.responses) == (2, 0)
    assert got.response_rate_pct == 0.0  # 0 answered of 2 sent: a real 0 %, not "—"
    assert (got.csat_pct, got.average) == (None, None)  # nothing answered to divide by


def test_windows_are_half_open(session_factory: sessionmaker[Session], session: Session) -> None:
    since, until = PERIOD.since, PERIOD.until  # 1 Mar 16:00 UTC, 8 Mar 16:00 UTC
    with session_factory.begin() as s:
        customer = Factory(s, PiiCipher(TEST_KEY)).customer()
        for created, score in ((since, 5), (until, 1), (since - timedelta(microseconds=1), 2)):
            survey(s, ticket(s, customer, created=created), sent=created, score=score,
                   agent=None)
    got = metrics.summary(session, PERIOD, Filters(), now=NOW)
    # the ticket and survey at `since` are in; those at `until` belong to the next period
    assert (got.tickets.tickets, got.csat.responses, got.csat.csat_pct) == (1, 1, 100.0)
    # one microsecond before `since` is the last instant of the period before
    assert (got.tickets_before.tickets, got.csat_before.responses) == (1, 1)
    assert got.csat_before.csat_pct == 0.0  # its one answer was a 2


def test_satisfaction_by_agent_keeps_the_unassigned(
        session_factory: sessionmaker[Session], session: Session) -> None:
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        team = make.team(code="front")
        li, wang = make.agent(team=team, name="Li"), make.agent(team=team, name="Wang")
        rated(s, make, [5, 5, 2], agent=li)
        rated(s, make, [1, None], agent=wang)
        rated(s, make, [4])  # credited to nobody
        ids = {"li": li.id, "wang": wang.id}
    _, csat = metrics.table(session, PERIOD, Filters(), "agent", now=NOW)
    assert set(csat) == {ids["li"], ids["wang"], None}
    assert csat[ids["li"]].csat_pct == pytest.approx(200 / 3)  # (5, 5) of (5, 5, 2)
    wang_row = csat[ids["wang"]]
    assert (wang_row.csat_pct, wang_row.response_rate_pct) == (0.0, 50.0)  # a 1; 1 of 2 sent
    assert (csat[None].sent, csat[None].csat_pct) == (1, 100.0)  # the 4


def test_satisfaction_by_team_category_and_channel(
        session_factory: sessionmaker[Session], session: Session) -> None:
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        front, after = make.team(code="front"), make.team(code="aftersales", tier=2)
        f, g = make.agent(team=front), make.agent(team=after)
        rated(s, make, [5], agent=f, category=Category.REFUND, channel=Channel.WIDGET)
        rated(s, make, [1], agent=g, category=Category.REFUND, channel=Channel.TELEGRAM)
        rated(s, make, [4], agent=g, category=Category.QUALITY, channel=Channel.TELEGRAM)
        teams = {"front": front.id, "after": after.id}

    def by(dimension: str) -> dict[object, tuple[int, float | None]]:
        _, csat = metrics.table(session, PERIOD, Filters(), dimension, now=NOW)
        return {k: (v.responses, v.csat_pct) for k, v in csat.items()}

    # front: the 5 → 100 %; aftersales: the 1 and the 4 → 1 of 2 = 50 %
    assert by("team") == {teams["front"]: (1, 100.0), teams["after"]: (2, 50.0)}
    # refund: the 5 and the 1 → 50 %; quality: the 4 → 100 %
    assert by("category") == {"refund": (2, 50.0), "quality": (1, 100.0)}
    # widget: the 5 → 100 %; telegram: the 1 and the 4 → 50 %
    assert by("channel") == {"widget": (1, 100.0), "telegram": (2, 50.0)}


def test_days_are_the_shops_local_days(engine, session_factory: sessionmaker[Session]) -> None:
    # 3 Mar 20:00 UTC is 4 Mar 04:00 in Shanghai; 4 Mar 03:00 UTC is 4 Mar 11:00 there
    evening, morning = utc(2026, 3, 3, 20), utc(2026, 3, 4, 3)
    in_utc = make_session_factory(engine, schedule=ScheduleSettings(timezone="UTC"))
    with in_utc.begin() as s:
        customer = Factory(s, PiiCipher(TEST_KEY)).customer()
        for at, score in ((evening, 5), (morning, 2)):
            survey(s, ticket(s, customer, created=at), sent=at, score=score, agent=None)

    def days(factory: sessionmaker[Session], period: Period) -> dict[str, tuple[int, int]]:
        with factory() as s:
            tickets, csat = metrics.trend(s, period, Filters(), "day", now=NOW)
        return {day: (tickets[day].tickets, csat[day].responses) for day in tickets}

    utc_period = Period.of_days(date(2026, 3, 2), date(2026, 3, 8), "UTC")
    assert days(in_utc, utc_period) == {"2026-03-03": (1, 1), "2026-03-04": (1, 1)}
    facts.rebuild(session_factory)  # the same shop moved to Shanghai (the default zone)
    assert days(session_factory, PERIOD) == {"2026-03-04": (2, 2)}
    with session_factory() as s:
        _, csat = metrics.trend(s, PERIOD, Filters(), "day", now=NOW)
    assert csat["2026-03-04"].csat_pct == 50.0  # the 5 of (5, 2)


def test_weeks_are_iso_weeks_across_the_new_year(
        session_factory: sessionmaker[Session], session: Session) -> None:
    with session_factory.begin() as s:
        customer = Factory(s, PiiCipher(TEST_KEY)).customer()
        for at, score in ((utc(2025, 12, 28, 4), 5),  # Sunday, 2025-W52
                          (utc(2025, 12, 29, 4), 4),  # Monday, 2026-W01 (ISO year 2026)
                          (utc(2026, 1, 4, 4), 1),  # Sunday, 2026-W01
                          (utc(2026, 1, 5, 4), 3)):  # Monday, 2026-W02
            survey(s, ticket(s, customer, created=at), sent=at, score=score, agent=None)
    winter = Period.of_days(date(2025, 12, 1), date(2026, 1, 31), "Asia/Shanghai")
    tickets, csat = metrics.trend(session, winter, Filters(), "week", now=NOW)
    assert {k: v.tickets for k, v in tickets.items()} == {
        "2025-W52": 1, "2026-W01": 2, "2026-W02": 1}
    assert {k: (v.responses, v.csat_pct) for k, v in csat.items()} == {
        "2025-W52": (1, 100.0), "2026-W01": (2, 50.0), "2026-W02": (1, 0.0)}  # (4, 1); (3)
    # Mon 1 Dec 2025 is in 2025-W49; Sat 31 Jan 2026 in 2026-W05 (26 Jan – 1 Feb)
    assert metrics.buckets(winter, "week") == [
        "2025-W49", "2025-W50", "2025-W51", "2025-W52",
        "2026-W01", "2026-W02", "2026-W03", "2026-W04", "2026-W05"]


def test_unknown_groupings_are_refused(session: Session) -> None:
    with pytest.raises(ValidationError):
        metrics.table(session, PERIOD, Filters(), "month", now=NOW)
    with pytest.raises(ValidationError):
        metrics.counts(session, PERIOD, Filters(), "month", now=NOW)
    with pytest.raises(ValidationError):
        metrics.trend(session, PERIOD, Filters(), "month", now=NOW)


# --- SLA --------------------------------------------------------------------------------------
def test_sla_on_the_deadline_is_met_a_second_late_is_breached_and_paused_is_not_counted(
        session_factory: sessionmaker[Session], session: Session) -> None:
    created = instants(utc(2026, 3, 4, 2))  # 4 March, long before NOW
    with session_factory.begin() as s:
        customer = Factory(s, PiiCipher(TEST_KEY)).customer()
        for timers in (
            [(FR, DONE, 8 * H, 8 * H, False)],  # answered exactly on the deadline: met
            [(FR, DONE, 8 * H, 8 * H + timedelta(seconds=1), False)],  # a second late
            [(FR, DONE, 8 * H, 10 * H, True)],  # marked breached by the worker
            [(FR, ACTIVE, 8 * H, None, False)],  # still running, deadline passed: breached
            [(FR, ACTIVE, 200 * H, None, False)],  # running, due 12 Mar: not decided yet
            [(FR, PAUSED, 8 * H, None, False)],  # paused past its deadline: not counted
            [],  # no clock at all
        ):
            ticket(s, customer, created=next(created), timers=timers)
    got = metrics.summary(session, PERIOD, Filters(), now=NOW).tickets
    assert got.tickets == 7  # every ticket counts as a ticket, clock or not
    assert got.sla["first_response"] == [1, 3]  # met: on time; breached: late, marked, overdue
    assert got.sla_pct("first_response") == 25.0  # 1 of 1 + 3
    assert got.sla_n("resolution") == 0 and got.sla_pct("resolution") is None


def test_one_breached_generation_makes_the_ticket_breached(
        session_factory: sessionmaker[Session], session: Session) -> None:
    created = instants(utc(2026, 3, 4, 2))
    with session_factory.begin() as s:
        customer = Factory(s, PiiCipher(TEST_KEY)).customer()
        # solved in time, reopened, and the second resolution clock was breached
        ticket(s, customer, created=next(created),
               timers=[(RES, DONE, 72 * H, 4 * H, False), (RES, DONE, 30 * H, 40 * H, True)])
        # solved in time twice
        ticket(s, customer, created=next(created),
               timers=[(RES, DONE, 72 * H, 4 * H, False), (RES, DONE, 93 * H, 30 * H, False)])
    got = metrics.summary(session, PERIOD, Filters(), now=NOW).tickets
    assert got.sla["resolution"] == [1, 1] and got.sla_pct("resolution") == 50.0
    assert got.sla_pct("first_response") is None  # no first-response clocks


def test_sla_by_owner_and_by_the_local_day_of_creation(
        session_factory: sessionmaker[Session], session: Session) -> None:
    late_evening = instants(utc(2026, 3, 2, 23))  # 3 March 07:00 in Shanghai
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        team = make.team(code="front")
        li, wang = make.agent(team=team, name="Li"), make.agent(team=team, name="Wang")
        customer = make.customer()
        for owner, answered in ((li, 2 * H), (li, 8 * H), (wang, 10 * H)):  # deadline 8 h
            ticket(s, customer, created=next(late_evening), owner=owner,
                   timers=[(FR, DONE, 8 * H, answered, False)])
        # created at the end of the period: the next period's
        ticket(s, customer, created=PERIOD.until, owner=wang,
               timers=[(FR, DONE, 8 * H, H, False)])
        ids = {"li": li.id, "wang": wang.id}
    tickets, _ = metrics.table(session, PERIOD, Filters(), "agent", now=NOW)
    assert {k: (v.tickets, v.sla_pct("first_response")) for k, v in tickets.items()} == {
        ids["li"]: (2, 100.0),  # 2 h and 8 h against 8 h: both met
        ids["wang"]: (1, 0.0)}  # 10 h: breached; the ticket at `until` is not counted
    days, _ = metrics.trend(session, PERIOD, Filters(), "day", now=NOW)
    assert {k: v.tickets for k, v in days.items()} == {"2026-03-03": 3}  # not 2 March (UTC)


# --- contact reasons --------------------------------------------------------------------------
def test_contact_reasons_count_tickets_per_category(
        session_factory: sessionmaker[Session], session: Session) -> None:
    created = instants()
    with session_factory.begin() as s:
        customer = Factory(s, PiiCipher(TEST_KEY)).customer()
        for category in (Category.LOGISTICS, Category.LOGISTICS, Category.LOGISTICS,
                         Category.REFUND):
            ticket(s, customer, created=next(created), category=category)
        ticket(s, customer, created=PERIOD.since - timedelta(days=1), category=Category.QUALITY)
    reasons = metrics.counts(session, PERIOD, Filters(), "category", now=NOW)
    # the quality ticket came the day before the period
    assert {k: v.tickets for k, v in reasons.items()} == {"logistics": 3, "refund": 1}
    # the shares the dashboard draws: 3 of 4 = 75 %, 1 of 4 = 25 %
    total = metrics.summary(session, PERIOD, Filters(), now=NOW).tickets.tickets
    assert {k: 100 * v.tickets / total for k, v in reasons.items()} == {
        "logistics": 75.0, "refund": 25.0}
