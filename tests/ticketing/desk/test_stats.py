"""Manager statistics (ticketing.desk.stats) on hand-built surveys, tickets and SLA timers."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest

from ticketing.core import errors
from ticketing.desk import stats
from ticketing.core.models import (
    Category,
    Channel,
    Priority,
    SlaTimer,
    Survey,
    Ticket,
    TicketState,
    TimerKind,
    TimerStatus,
)

UTC = timezone.utc
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
_numbers = itertools.count(1)


class Desk:
    """Builds tickets and surveys with only the fields statistics read."""

    def __init__(self, make) -> None:
        self.make = make
        self.session = make.session
        self.customer = make.customer()

    def ticket(self, *, owner=None, team=None, category=Category.LOGISTICS,
               channel=Channel.TELEGRAM, created_at=NOW) -> Ticket:
        ticket = Ticket(
            number=f"S{next(_numbers):08d}", customer_id=self.customer.id, channel=channel,
            category=category, priority=Priority.NORMAL, tier=1, state=TicketState.SOLVED,
            subject="s", team_id=team.id if team else None,
            owner_id=owner.id if owner else None, created_at=created_at,
        )
        self.session.add(ticket)
        self.session.flush()
        return ticket

    def survey(self, score=None, *, agent=None, team=None, category="logistics",
               channel="telegram", sent_at=NOW) -> Survey:
        ticket = self.ticket(owner=agent, team=team)
        survey = Survey(
            ticket_id=ticket.id, customer_id=self.customer.id,
            agent_id=agent.id if agent else None, team_id=team.id if team else None,
            category=category, channel=channel, sent_at=sent_at, score=score,
            answered_at=None if score is None else sent_at + timedelta(minutes=5),
        )
        self.session.add(survey)
        self.session.flush()
        return survey

    def timer(self, ticket, kind=TimerKind.FIRST_RESPONSE, *, status=TimerStatus.DONE,
              deadline=NOW, completed=None, breached=None, generation=1) -> SlaTimer:
        timer = SlaTimer(ticket_id=ticket.id, kind=kind, generation=generation, status=status,
                         started_at=deadline - timedelta(hours=24), deadline_at=deadline,
                         completed_at=completed, breached_at=breached)
        self.session.add(timer)
        self.session.flush()
        return timer


@pytest.fixture
def desk(make) -> Desk:
    return Desk(make)


def total(session, **kwargs) -> stats.CsatRow:
    [row] = stats.csat_report(session, since=SINCE, until=UNTIL, **kwargs)
    return row


# --- CSAT ------------------------------------------------------------------------------------
def test_csat_formula_on_hand_built_scores(desk, session) -> None:
    for score in (5, 4, 3, 1, 5):
        desk.survey(score)
    desk.survey(None)
    desk.survey(None)
    row = total(session)
    assert (row.surveys_sent, row.responses) == (7, 5)
    assert row.csat_pct == pytest.approx(60.0)  # (two 5s + one 4) / 5 responses
    assert row.average_score == pytest.approx(3.6)
    assert row.response_rate_pct == pytest.approx(100 * 5 / 7)
    assert row.distribution == {1: 1, 2: 0, 3: 1, 4: 1, 5: 2}
    assert row.to_dict()["response_rate_pct"] == 71.43


def test_no_responses_gives_none_not_a_division_by_zero(desk, session) -> None:
    empty = total(session)
    assert (empty.surveys_sent, empty.csat_pct, empty.response_rate_pct) == (0, None, None)
    assert empty.average_score is None
    desk.survey(None)
    unanswered = total(session)
    assert unanswered.surveys_sent == 1
    assert (unanswered.csat_pct, unanswered.average_score) == (None, None)
    assert unanswered.response_rate_pct == 0.0


def test_window_is_half_open_on_sent_at(desk, session) -> None:
    desk.survey(5, sent_at=SINCE)
    desk.survey(1, sent_at=UNTIL)
    desk.survey(1, sent_at=SINCE - timedelta(microseconds=1))
    row = total(session)
    assert (row.responses, row.csat_pct) == (1, 100.0)


def test_grouping_by_agent_with_names_and_the_unassigned(desk, make, session) -> None:
    li, wang = make.agent(name="Li"), make.agent(name="Wang")
    for score in (5, 5, 2):
        desk.survey(score, agent=li)
    desk.survey(1, agent=wang)
    desk.survey(None, agent=wang)
    desk.survey(4)
    rows = stats.csat_report(session, since=SINCE, until=UNTIL, group_by="agent", language="en")
    by_key = {r.key: r for r in rows}
    assert [r.key for r in rows] == [None, str(li.id), str(wang.id)]
    assert by_key[str(li.id)].label == "Li"
    assert by_key[str(li.id)].csat_pct == pytest.approx(200 / 3)
    assert (by_key[str(wang.id)].csat_pct, by_key[str(wang.id)].response_rate_pct) == (0.0, 50.0)
    assert (by_key[None].label, by_key[None].csat_pct) == ("Unassigned", 100.0)


def test_grouping_by_team_category_and_channel(desk, make, session) -> None:
    front = make.team(code="frontline")
    after = make.team(code="aftersales", tier=2)
    desk.survey(5, team=front, category="refund", channel="widget")
    desk.survey(1, team=after, category="refund", channel="telegram")
    desk.survey(4, team=after, category="quality", channel="telegram")

    def pct(group_by):
        rows = stats.csat_report(session, since=SINCE, until=UNTIL, group_by=group_by)
        return {r.key: (r.responses, r.csat_pct) for r in rows}

    assert pct("team") == {str(front.id): (1, 100.0), str(after.id): (2, 50.0)}
    assert pct("category") == {"refund": (2, 50.0), "quality": (1, 100.0)}
    assert pct("channel") == {"widget": (1, 100.0), "telegram": (2, 50.0)}
    labels = {r.key: r.label for r in stats.csat_report(
        session, since=SINCE, until=UNTIL, group_by="category", language="zh")}
    assert labels == {"refund": "退款", "quality": "商品质量"}


def test_grouping_by_day_follows_the_time_zone(desk, session) -> None:
    late_evening_utc = datetime(2026, 3, 9, 20, 0, tzinfo=UTC)  # 04:00 on the 10th in Shanghai
    desk.survey(5, sent_at=late_evening_utc)
    desk.survey(2, sent_at=datetime(2026, 3, 10, 3, 0, tzinfo=UTC))
    in_utc = stats.csat_report(session, since=SINCE, until=UNTIL, group_by="day")
    assert {r.key: r.responses for r in in_utc} == {"2026-03-09": 1, "2026-03-10": 1}
    shanghai = stats.csat_report(session, since=SINCE, until=UNTIL, group_by="day",
                                 tz="Asia/Shanghai")
    assert [(r.key, r.responses, r.csat_pct) for r in shanghai] == [("2026-03-10", 2, 50.0)]


def test_grouping_by_iso_week_across_the_new_year(desk, session) -> None:
    desk.survey(5, sent_at=datetime(2025, 12, 28, 12, tzinfo=UTC))  # Sunday, 2025-W52
    desk.survey(4, sent_at=datetime(2025, 12, 29, 12, tzinfo=UTC))  # Monday, 2026-W01
    desk.survey(1, sent_at=datetime(2026, 1, 4, 12, tzinfo=UTC))  # Sunday, 2026-W01
    desk.survey(3, sent_at=datetime(2026, 1, 5, 12, tzinfo=UTC))  # Monday, 2026-W02
    rows = stats.csat_report(session, since=datetime(2025, 12, 1, tzinfo=UTC),
                             until=datetime(2026, 2, 1, tzinfo=UTC), group_by="week")
    assert [(r.key, r.responses, r.csat_pct) for r in rows] == [
        ("2025-W52", 1, 100.0), ("2026-W01", 2, 50.0), ("2026-W02", 1, 0.0)]


@pytest.mark.parametrize("kwargs", [
    {"since": datetime(2026, 3, 1), "until": UNTIL},
    {"since": UNTIL, "until": SINCE},
    {"since": SINCE, "until": UNTIL, "group_by": "month"},
    {"since": SINCE, "until": UNTIL, "tz": "Mars/Olympus"},
])
def test_bad_windows_and_groupings_are_refused(session, kwargs) -> None:
    with pytest.raises(errors.ValidationError):
        stats.csat_report(session, **kwargs)


# --- SLA -------------------------------------------------------------------------------------
def test_sla_compliance_counts_met_late_breached_and_overdue(desk, session) -> None:
    deadline = NOW - timedelta(hours=1)
    met = desk.ticket()
    desk.timer(met, deadline=deadline, completed=deadline)  # exactly on time
    late = desk.ticket()
    desk.timer(late, deadline=deadline, completed=deadline + timedelta(seconds=1))
    marked = desk.ticket()
    desk.timer(marked, deadline=deadline, completed=NOW, breached=deadline)
    overdue = desk.ticket()
    desk.timer(overdue, status=TimerStatus.ACTIVE, deadline=deadline)
    running = desk.ticket()
    desk.timer(running, status=TimerStatus.ACTIVE, deadline=NOW + timedelta(hours=3))
    paused = desk.ticket()
    desk.timer(paused, status=TimerStatus.PAUSED, deadline=deadline)
    desk.ticket()  # no timers at all
    [row] = stats.sla_report(session, since=SINCE, until=UNTIL, now=NOW)
    assert row.tickets == 7
    assert (row.first_response_met, row.first_response_breached) == (1, 3)
    assert row.first_response_met_pct == 25.0
    assert row.resolution_met_pct is None


def test_a_breached_generation_makes_the_ticket_breached(desk, session) -> None:
    deadline = NOW - timedelta(hours=1)
    reopened = desk.ticket()
    desk.timer(reopened, TimerKind.RESOLUTION, deadline=deadline, completed=deadline,
               generation=1)
    desk.timer(reopened, TimerKind.RESOLUTION, deadline=deadline, breached=deadline,
               completed=NOW, generation=2)
    twice_on_time = desk.ticket()
    for generation in (1, 2):
        desk.timer(twice_on_time, TimerKind.RESOLUTION, deadline=deadline,
                   completed=deadline - timedelta(hours=1), generation=generation)
    [row] = stats.sla_report(session, since=SINCE, until=UNTIL, now=NOW)
    assert (row.resolution_met, row.resolution_breached, row.resolution_met_pct) == (1, 1, 50.0)
    assert row.first_response_met_pct is None


def test_sla_grouped_by_agent_and_by_creation_day(desk, make, session) -> None:
    li, wang = make.agent(name="Li"), make.agent(name="Wang")
    deadline = NOW - timedelta(hours=1)
    for owner, completed in ((li, deadline), (li, deadline), (wang, NOW)):
        ticket = desk.ticket(owner=owner, created_at=datetime(2026, 3, 2, 23, tzinfo=UTC))
        desk.timer(ticket, deadline=deadline, completed=completed)
    outside = desk.ticket(owner=wang, created_at=UNTIL)
    desk.timer(outside, deadline=deadline, completed=deadline)
    rows = stats.sla_report(session, since=SINCE, until=UNTIL, group_by="agent", now=NOW)
    assert {r.label: (r.tickets, r.first_response_met_pct) for r in rows} == {
        "Li": (2, 100.0), "Wang": (1, 0.0)}
    by_day = stats.sla_report(session, since=SINCE, until=UNTIL, group_by="day",
                              tz="Asia/Shanghai", now=NOW)
    assert [(r.key, r.tickets) for r in by_day] == [("2026-03-03", 3)]


# --- contact reasons and the report ----------------------------------------------------------
def test_contact_reasons_count_tickets_per_category(desk, session) -> None:
    for category in (Category.LOGISTICS, Category.LOGISTICS, Category.LOGISTICS,
                     Category.REFUND):
        desk.ticket(category=category)
    desk.ticket(category=Category.QUALITY, created_at=SINCE - timedelta(days=1))
    rows = stats.contact_reasons(session, since=SINCE, until=UNTIL, language="en")
    assert len(rows) == len(Category)
    assert [(r.category, r.tickets, r.share_pct) for r in rows[:3]] == [
        ("logistics", 3, 75.0), ("refund", 1, 25.0), ("account", 0, 0.0)]
    assert rows[0].label == "Logistics"


def test_report_to_dict_is_plain_json(desk, make, session) -> None:
    li = make.agent(name="Li")
    for score in (5, 4, 3, 1, 5):
        desk.survey(score, agent=li)
    report = stats.build_report(session, since=SINCE, until=UNTIL, group_by="agent", now=NOW)
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert data["group_by"] == "agent"
    assert data["since"] == "2026-03-01T00:00:00+00:00"
    assert data["csat_total"]["csat_pct"] == 60.0
    assert data["csat_total"]["score_5"] == 2
    assert data["csat"][0]["label"] == "Li"
    assert data["sla_total"]["tickets"] == 5
    assert data["reasons"][0] == {"category": "logistics", "label": "物流", "tickets": 5,
                                  "share_pct": 100.0}
