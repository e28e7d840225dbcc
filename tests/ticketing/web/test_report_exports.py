"""The reports' CSV exports against spreadsheet formula injection: text a customer or an admin
typed never reaches a spreadsheet as a formula, while numbers stay numbers."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.reports.builders import H, survey, ticket, utc
from tests.ticketing.web.conftest import People, sign_in
from ticketing.core.models import Agent, TicketState
from ticketing.core.pii import PiiCipher
from ticketing.web.routes.report_exports import _cell

RANGE = "since=2026-02-23&until=2026-03-01"
COMMENTS = ("=1+1", "+cmd", "-2+3", "@SUM(A1)", "＝HYPERLINK(\"http://evil.example\")",
            "很好，谢谢")


def _rows(content: bytes) -> list[dict[str, str]]:
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    return [dict(zip(rows[0], row)) for row in rows[1:]]


@pytest.fixture
def commented(session_factory: sessionmaker[Session], people: People) -> dict[str, str]:
    """A rated ticket per comment, all owned by an agent whose name starts with ``@``."""
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        customer = make.customer()
        owner = s.get(Agent, people.desk.l1.id)
        assert owner is not None
        owner.display_name = "@evil"
        numbers = {}
        for day, comment in enumerate(COMMENTS):
            t = ticket(s, customer, created=utc(2026, 2, 23 + day, 2), owner=owner,
                       state=TicketState.SOLVED, messages=[(H, "agent")],
                       events=[(2 * H, "state_changed", "solved")])
            survey(s, t, sent=utc(2026, 2, 23 + day, 5), score=2, agent=owner, comment=comment)
            numbers[t.number] = comment
        return numbers


def test_comments_that_start_a_formula_are_written_as_text(app, people: People,
                                                          commented: dict[str, str]) -> None:
    manager = sign_in(app, people.manager)
    response = manager.get(f"/reports/export/tickets.csv?{RANGE}")
    assert response.status_code == 200
    by_number = {row["number"]: row for row in _rows(response.content)}
    assert {n: by_number[n]["comment"] for n in commented} == {
        n: ("很好，谢谢" if c == "很好，谢谢" else "'" + c) for n, c in commented.items()}
    for row in by_number.values():
        assert row["owner"] == "'@evil"
        assert (row["csat"], row["tier"], row["first_response_minutes"]) == ("2", "1", "60.0")


def test_the_table_export_goes_through_the_same_guard(app, people: People,
                                                      commented: dict[str, str]) -> None:
    manager = sign_in(app, people.manager)
    table = manager.get(f"/reports/export/table.csv?{RANGE}&dimension=agent")
    labels = [row[0] for row in csv.reader(io.StringIO(table.content.decode("utf-8-sig")))]
    assert "'@evil" in labels and "@evil" not in labels


@pytest.mark.parametrize("value, written", [
    (-3, -3), (-2.5, -2.5), (0, 0), (None, ""), ("\t1", "'\t1"), ("\r1", "'\r1"),
    ("－1", "'－1"), ("＋1", "'＋1"), ("＠A1", "'＠A1"), ("a=b", "a=b"), ("—", "—"),
])
def test_numbers_stay_numbers_and_only_text_is_guarded(value: Any, written: Any) -> None:
    assert _cell(value) == written
