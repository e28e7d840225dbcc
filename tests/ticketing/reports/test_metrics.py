"""Each metric on hand-built tickets; every expected figure is worked out in the comments.

The shop is in Shanghai (UTC+8). The period is Mon 2 – Sun 8 March 2026 (local days), the one
before it 23 Feb – 1 Mar; "now" is 9 March 00:00 UTC.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import Factory
from tests.ticketing.reports.builders import H, chat, survey, ticket, utc
from ticketing.core.db import make_session_factory
from ticketing.core.errors import ValidationError
from ticketing.core.models import Category, Channel, TicketState, TimerKind, TimerStatus
from ticketing.core.pii import PiiCipher
from ticketing.core.settings import ScheduleSettings
from ticketing.reports import metrics
from ticketing.reports.aggregates import Distribution, percentile
from ticketing.reports.scope import Filters, Period

from tests.conftest import TEST_KEY

NOW = utc(2026, 3, 9)
PERIOD = Period.of_days(date(2026, 3, 2), date(2026, 3, 8), "Asia/Shanghai")
FR, NR, RES = TimerKind.FIRST_RESPONSE, TimerKind.NEXT_RESPONSE, TimerKind.RESOLUTION
ACTIVE, DONE = TimerStatus.ACTIVE, TimerStatus.DONE


@pytest.fixture
def shop(session_factory: sessionmaker[Session]) -> dict[str, int]:
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        team = make.team(code="front")
        a, b = make.agent(team=team, name="A"), make.agent(team=team, name="B")
        customer = make.customer()
        chat(s, "widget:c1", utc(2026, 3, 2, 1, 50), utc(2026, 3, 2, 1, 55))
        chat(s, "widget:c2", utc(2026, 3, 3, 5))
        chat(s, "telegram:c3", utc(2026, 3, 4, 5), utc(2026, 3, 4, 6), channel="telegram")
        chat(s, "widget:c4", utc(2026, 2, 25, 5))  # the period before
        # T1 (a, handed off by the bot): first reply after 30 min, the customer writes at +2h
        # and gets an answer at +3h (a 1 h next response), solved at +4h; all clocks met; 5 stars
        t1 = ticket(s, customer, created=utc(2026, 3, 2, 2), owner=a, state=TicketState.SOLVED,
                    conversation_id="widget:c1", by_bot=True,
                    messages=[(-H / 12, "customer"), (H / 2, "agent"), (2 * H, "customer"),
                              (2.5 * H, "note"), (3 * H, "agent")],
                    events=[(4 * H, "state_changed", "solved")],
                    timers=[(FR, DONE, 24 * H, H / 2, False), (NR, DONE, 26 * H, 3 * H, False),
                            (RES, DONE, 72 * H, 4 * H, False)])
        survey(s, t1, sent=utc(2026, 3, 2, 6), score=5, agent=a)
        # T2 (b, Telegram): first reply after 10 h (first-response clock breached), solved at
        # +20h, reopened at +21h by the customer, answered at +25h (4 h), solved again at +30h
        t2 = ticket(s, customer, created=utc(2026, 3, 3, 2), owner=b, state=TicketState.SOLVED,
                    channel=Channel.TELEGRAM, reopen_count=1,
                    messages=[(10 * H, "agent"), (21 * H, "customer"), (25 * H, "agent")],
                    events=[(20 * H, "state_changed", "solved"), (21 * H, "reopened", "open"),
                            (30 * H, "state_changed", "solved")],
                    timers=[(FR, DONE, 8 * H, 10 * H, True), (RES, DONE, 72 * H, 20 * H, False),
                            (RES, DONE, 93 * H, 30 * H, False)])
        survey(s, t2, sent=utc(2026, 3, 4, 8), score=2, agent=b)
        # T3 (nobody, quality, escalated): never answered; its first-response clock ran past
        # its deadline (breached now), its resolution clock still has time
        ticket(s, customer, created=utc(2026, 3, 4, 2), state=TicketState.NEW,
               category=Category.QUALITY, messages=[(H, "customer")],
               events=[(H, "escalated", None)],
               timers=[(FR, ACTIVE, 24 * H, None, False), (RES, ACTIVE, 400 * H, None, False)])
        # T5 (a): answered after 2 h, solved at +3h; the survey got no answer
        t5 = ticket(s, customer, created=utc(2026, 3, 6, 2), owner=a, state=TicketState.CLOSED,
                    messages=[(2 * H, "agent")], events=[(3 * H, "state_changed", "solved"),
                                                         (50 * H, "state_changed", "closed")],
                    timers=[(FR, DONE, 24 * H, 2 * H, False), (RES, DONE, 72 * H, 3 * H, False)])
        survey(s, t5, sent=utc(2026, 3, 6, 5), score=None, agent=a)
        # T4 (a), the period before: answered after 1 h, 4 stars
        t4 = ticket(s, customer, created=utc(2026, 2, 25, 2), owner=a, state=TicketState.SOLVED,
                    messages=[(H, "agent")], events=[(5 * H, "state_changed", "solved")])
        survey(s, t4, sent=utc(2026, 2, 25, 8), score=4, agent=a)
        return {"a": a.id, "b": b.id, "team": team.id}


def test_headline_figures_of_the_period_and_the_one_before(
        session: Session, shop: dict[str, int]) -> None:
    got = metrics.summary(session, PERIOD, Filters(), now=NOW)
    t = got.tickets
    assert t.tickets == 4  # T1, T2, T3, T5
    assert t.escalation_pct == pytest.approx(25.0)  # T3 of 4
    assert (t.solved, t.reopened) == (3, 1)  # T2 of T1, T2, T5
    assert t.reopen_pct == pytest.approx(100 / 3)
    assert t.unanswered == 1  # T3
    assert t.handed_off == 1  # T1
    # first responses 30 min, 10 h, 2 h → median 2 h; p90 = 2h + (10h - 2h) * 0.8
    fr = t.duration("first_response")
    assert (fr.n, fr.median, fr.p90) == (3, 7200, pytest.approx(30240))
    # next responses: T1 1 h, T2 4 h → median 2.5 h, p90 = 1h + 3h * 0.9
    nr = t.duration("next_response")
    assert (nr.n, nr.median, nr.p90) == (2, 9000, pytest.approx(13320))
    # first solve 4 h, 20 h, 3 h; last solve 4 h, 30 h, 3 h
    first = t.duration("resolution_first")
    assert (first.n, first.median, first.p90) == (3, 14400, pytest.approx(60480))
    last = t.duration("resolution_last")
    assert (last.n, last.median, last.p90) == (3, 14400, pytest.approx(89280))
    # round-the-clock calendar: business time equals calendar time
    assert t.duration("first_response_bh").median == 7200
    # SLA: first response met T1, T5; breached T2 (marked), T3 (running past its deadline)
    assert t.sla["first_response"] == [2, 2] and t.sla_pct("first_response") == 50.0
    assert t.sla["resolution"] == [3, 0]  # T3's resolution clock still has time: not counted
    assert t.sla["next_response"] == [1, 0]
    # CSAT counts surveys sent in the period: 5, 2 and one unanswered
    assert (got.csat.sent, got.csat.responses) == (3, 2)
    assert got.csat.csat_pct == 50.0 and got.csat.average == 3.5
    assert got.csat.response_rate_pct == pytest.approx(200 / 3)
    assert got.csat.distribution == {1: 0, 2: 1, 3: 0, 4: 0, 5: 1}
    # conversations: c1 handed off (T1), c2 and c3 contained
    c = got.conversations
    assert (c.conversations, c.contained, c.handed_off) == (3, 2, 1)
    assert c.containment_pct == pytest.approx(200 / 3)
    assert got.breached_now == 1  # T3; T2 is solved
    # the week before: T4 alone, 4 stars; c4 contained
    assert got.tickets_before.tickets == 1 and got.csat_before.csat_pct == 100.0
    assert got.conversations_before.containment_pct == 100.0


def test_tables_by_agent_and_trend_by_day(session: Session, shop: dict[str, int]) -> None:
    tickets, csat = metrics.table(session, PERIOD, Filters(), "agent", now=NOW)
    assert {k: v.tickets for k, v in tickets.items()} == {shop["a"]: 2, shop["b"]: 1, None: 1}
    assert csat[shop["a"]].csat_pct == 100.0 and csat[shop["a"]].sent == 2
    assert csat[shop["b"]].csat_pct == 0.0
    assert tickets[shop["a"]].duration("first_response").median == pytest.approx(4500)  # 30m, 2h
    days, day_csat = metrics.trend(session, PERIOD, Filters(), "day", now=NOW)
    assert {k: v.tickets for k, v in days.items()} == {
        "2026-03-02": 1, "2026-03-03": 1, "2026-03-04": 1, "2026-03-06": 1}
    assert day_csat["2026-03-04"].distribution[2] == 1
    weeks, _ = metrics.trend(session, PERIOD, Filters(), "week", now=NOW)
    assert {k: v.tickets for k, v in weeks.items()} == {"2026-W10": 4}
    assert weeks["2026-W10"].duration("first_response").median == 7200
    assert metrics.buckets(PERIOD, "week") == ["2026-W10"]


def test_filters_combine_and_narrow_every_figure(session: Session, shop: dict[str, int]) -> None:
    only_b = metrics.summary(session, PERIOD, Filters(agents=(shop["b"],)), now=NOW)
    assert only_b.tickets.tickets == 1 and only_b.csat.csat_pct == 0.0
    several = Filters(channels=("widget",), categories=("logistics", "quality"))
    got = metrics.summary(session, PERIOD, several, now=NOW)
    assert got.tickets.tickets == 3  # T1, T3, T5 (T2 came by Telegram)
    assert got.conversations.conversations == 2  # c1, c2 (c3 is Telegram)
    unassigned = Filters().narrowed("agent", None)
    assert metrics.summary(session, PERIOD, unassigned, now=NOW).tickets.tickets == 1  # T3


def test_an_empty_range_has_no_rates_only_zero_samples(session: Session,
                                                       shop: dict[str, int]) -> None:
    empty = Period.of_days(date(2025, 1, 1), date(2025, 1, 7), "Asia/Shanghai")
    got = metrics.summary(session, empty, Filters(), now=NOW)
    assert got.tickets.tickets == 0 and got.tickets.escalation_pct is None
    assert got.tickets.sla_pct("first_response") is None
    assert got.tickets.duration("first_response") == Distribution(0, None, None)
    assert got.csat.csat_pct is None and got.csat.response_rate_pct is None
    assert got.conversations.containment_pct is None


def test_business_hours_count_only_open_time(engine) -> None:  # type: ignore[no-untyped-def]
    factory = make_session_factory(engine, schedule=ScheduleSettings(
        business_hours="mon-fri 09:00-18:00"))
    with factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        agent = make.agent(team=make.team())
        # Friday 6 March 17:00 local → Monday 9 March 10:00 local: 65 h on the clock, 2 h open
        ticket(s, make.customer(), created=utc(2026, 3, 6, 9), owner=agent,
               messages=[(65 * H, "agent")])
    with factory() as s:
        got = metrics.summary(s, PERIOD, Filters(), now=NOW).tickets
        assert got.duration("first_response").median == 65 * 3600
        assert got.duration("first_response_bh").median == 2 * 3600


def test_periods_are_local_days_and_compare_with_the_span_before() -> None:
    assert PERIOD.since == utc(2026, 3, 1, 16) and PERIOD.until == utc(2026, 3, 8, 16)
    before = PERIOD.previous()
    assert (before.first, before.last) == (date(2026, 2, 23), date(2026, 3, 1))
    with pytest.raises(ValidationError):
        Period.of_days(date(2026, 3, 8), date(2026, 3, 2), "Asia/Shanghai")
    with pytest.raises(ValidationError):
        Period.of_days(date(2026, 3, 2), date(2026, 3, 8), "Mars/Olympus")


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([1.0], 0.9) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 20.0], 0.9) == 19.0
    assert percentile([], 0.5) is None
