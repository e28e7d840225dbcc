"""The managers' reports over HTTP: who may read them, the figures, drill-downs and exports."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.reports.builders import H, survey, ticket, utc
from tests.ticketing.web.conftest import People, sign_in
from ticketing.core.models import TicketState, TimerKind, TimerStatus
from ticketing.core.pii import PiiCipher
from ticketing.web.routes.report_exports import TICKET_COLUMNS

RANGE = "since=2026-02-23&until=2026-03-01"
PHONE = "13912345678"


@pytest.fixture
def rated(session_factory: sessionmaker[Session], people: People) -> dict[str, str]:
    """Two tickets of last week: one rated 2 with a comment, one rated 5."""
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        customer = make.customer(phone=PHONE, address="北京市朝阳区建国路1号")
        low = ticket(s, customer, created=utc(2026, 2, 24, 2), owner=people.desk.l1,
                     state=TicketState.SOLVED, messages=[(H, "agent")],
                     events=[(2 * H, "state_changed", "solved")],
                     timers=[(TimerKind.FIRST_RESPONSE, TimerStatus.DONE, 24 * H, H, False)])
        survey(s, low, sent=utc(2026, 2, 24, 5), score=2, agent=people.desk.l1,
               comment="太慢了，等了很久")
        high = ticket(s, customer, created=utc(2026, 2, 25, 2), owner=people.desk.l1b,
                      state=TicketState.SOLVED, messages=[(3 * H, "agent")],
                      events=[(4 * H, "state_changed", "solved")])
        survey(s, high, sent=utc(2026, 2, 25, 8), score=5, agent=people.desk.l1b)
        return {"low": low.number, "high": high.number}


@pytest.mark.parametrize("path", [
    "/reports", "/reports/tickets?metric=tickets", "/reports/refunds",
    "/reports/export/tickets.csv", "/reports/export/table.csv", "/reports/export/trend.csv",
    "/reports/export/refund_reasons.csv",
    "/api/v1/reports/summary",
])
def test_agents_cannot_open_reports(app, people: People, path: str) -> None:
    agent = sign_in(app, people.desk.l1)
    assert agent.get(path).status_code == 403
    assert sign_in(app, people.manager).get(path).status_code == 200


def test_the_dashboard_shows_satisfaction_with_its_sample(app, people: People,
                                                          rated: dict[str, str]) -> None:
    manager = sign_in(app, people.manager)
    page = manager.get(f"/reports?{RANGE}")
    assert page.status_code == 200
    assert 'data-key="csat"' in page.text and "50.0%" in page.text and "n=2" in page.text
    summary = manager.get(f"/api/v1/reports/summary?{RANGE}").json()
    csat = next(f for f in summary["figures"] if f["key"] == "csat")
    assert (csat["value"], csat["n"]) == ("50.0%", 2)
    assert csat["link"].startswith("/reports/tickets?")
    only_l1b = manager.get(f"/api/v1/reports/summary?{RANGE}&agent={people.desk.l1b.id}").json()
    assert next(f for f in only_l1b["figures"] if f["key"] == "csat")["value"] == "100.0%"


def test_a_low_score_drills_down_to_its_ticket(app, people: People,
                                               rated: dict[str, str]) -> None:
    manager = sign_in(app, people.manager)
    page = manager.get(f"/reports/tickets?{RANGE}&metric=csat_low")
    assert page.status_code == 200
    assert rated["low"] in page.text and rated["high"] not in page.text
    assert "太慢了" in page.text
    narrowed = manager.get(f"/reports/tickets?{RANGE}&metric=tickets&agent={people.desk.l1b.id}")
    assert rated["high"] in narrowed.text and rated["low"] not in narrowed.text


def test_the_ticket_export_opens_in_spreadsheets_and_holds_no_contact_details(
        app, people: People, rated: dict[str, str]) -> None:
    response = sign_in(app, people.manager).get(f"/reports/export/tickets.csv?{RANGE}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark
    text = raw.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == TICKET_COLUMNS
    by_number = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert set(by_number) == {rated["low"], rated["high"]}
    low = by_number[rated["low"]]
    assert (low["csat"], low["comment"], low["sla_first_response"]) == ("2", "太慢了，等了很久", "met")
    assert PHONE not in text and "建国路" not in text and "139" not in text


def test_table_exports_and_bad_questions(app, people: People, rated: dict[str, str]) -> None:
    manager = sign_in(app, people.manager)
    table = manager.get(f"/reports/export/table.csv?{RANGE}&dimension=agent")
    rows = list(csv.reader(io.StringIO(table.content.decode("utf-8-sig"))))
    assert len(rows) == 3  # header, Li, Wang
    trend = manager.get(f"/reports/export/trend.csv?{RANGE}&grain=day")
    assert len(list(csv.reader(io.StringIO(trend.content.decode("utf-8-sig"))))) == 8
    for bad in ("since=2026-13-01", "since=2026-03-02&until=2026-03-01", "agent=abc",
                "category=weather", "dimension=mood", "grain=year"):
        assert manager.get(f"/reports?{bad}").status_code == 422, bad
    assert manager.get(f"/reports/tickets?{RANGE}&metric=nope").status_code == 422


def test_a_supervisors_ticket_lists_hold_only_tickets_they_may_open(
        app, people: People, session_factory: sessionmaker[Session]) -> None:
    """§SEC-5: a supervisor reads the figures of every team, but the lists behind them (the
    drill-down and the ticket CSV) only the tickets they may open at the desk; another
    tier's ticket, its subject and its survey comment stay out. A manager sees it."""
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        customer = make.customer()
        ops = ticket(s, customer, created=utc(2026, 2, 24, 2), owner=people.desk.l3, tier=3,
                     state=TicketState.SOLVED, messages=[(H, "agent")],
                     events=[(2 * H, "state_changed", "solved")])
        ops.subject = "OPS-ONLY-SUBJECT"
        survey(s, ops, sent=utc(2026, 2, 24, 5), score=1, agent=people.desk.l3,
               comment="OPS-ONLY-COMMENT")
        number = ops.number
    supervisor = sign_in(app, people.desk.supervisor)
    manager = sign_in(app, people.manager)
    for reader, sees in ((supervisor, False), (manager, True)):
        page = reader.get(f"/reports/tickets?{RANGE}&metric=tickets")
        export = reader.get(f"/reports/export/tickets.csv?{RANGE}").content.decode("utf-8-sig")
        assert page.status_code == 200
        for text in (page.text, export):
            assert (number in text) is sees
            assert ("OPS-ONLY-COMMENT" in text) is sees
        assert ("OPS-ONLY-SUBJECT" in page.text) is sees
    summary = supervisor.get(f"/api/v1/reports/summary?{RANGE}").json()
    tickets = next(f for f in summary["figures"] if f["key"] == "tickets")
    assert tickets["value"] == "1"  # the figures still count every team's tickets
