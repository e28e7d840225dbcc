"""Numbers in query strings that Python's ``int()`` cannot take, or the database cannot hold:
each is a clear 4xx, never a 500 (``str.isdigit`` accepts "²"; SQLite holds 64 bits)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from tests.ticketing.web.conftest import People, sign_in
from tests.ticketing.web.test_ticket_actions import World, build_world

SUPERSCRIPT_2 = "%C2%B2"  # "²": a digit to str.isdigit, not to int()
HUGE = "9" * 20  # beyond a 64-bit integer
LONG = "1" * 5000  # beyond int()'s 4300 digits

REPORTS = "since=2026-02-23&until=2026-03-01"
CASES = [
    ("supervisor", "/board?team=" + SUPERSCRIPT_2),
    ("manager", "/board?team=" + SUPERSCRIPT_2),
    ("manager", "/api/v1/board?team=" + SUPERSCRIPT_2),
    ("manager", f"/reports?{REPORTS}&agent={SUPERSCRIPT_2}"),
    ("manager", f"/reports?{REPORTS}&team={SUPERSCRIPT_2}"),
    ("manager", f"/api/v1/reports/summary?{REPORTS}&tier={SUPERSCRIPT_2}"),
    ("manager", f"/reports/export/tickets.csv?{REPORTS}&agent={SUPERSCRIPT_2}"),
    ("manager", f"/reports/tickets?{REPORTS}&metric=tickets&page={SUPERSCRIPT_2}"),
    ("manager", f"/reports/tickets?{REPORTS}&metric=tickets&page={LONG}"),
    ("manager", f"/reports/refunds?{REPORTS}&customer={SUPERSCRIPT_2}"),
    ("manager", f"/reports/refunds?{REPORTS}&product={SUPERSCRIPT_2}"),
    ("manager", f"/reports/refunds?{REPORTS}&customer={HUGE}"),
    ("manager", f"/reports/refunds?{REPORTS}&product={HUGE}"),
    ("agent", f"/?offset={HUGE}"),
    ("agent", "/?offset=-1"),
    ("agent", "/api/v1/canned-replies?ticket_id={ticket}&order_id=" + HUGE),
    ("agent", "/api/v1/canned-replies?ticket_id={ticket}&order_id=0"),
]


@pytest.fixture
def world(session_factory: Any, people: People) -> World:
    return build_world(session_factory, people)


@pytest.mark.parametrize("role, url", CASES)
def test_a_number_no_one_can_mean_is_refused_not_a_crash(app: FastAPI, people: People,
                                                         world: World, role: str,
                                                         url: str) -> None:
    who = {"agent": people.desk.l1, "supervisor": people.desk.supervisor,
           "manager": people.manager}[role]
    client = sign_in(app, who)
    client.follow_redirects = False
    response = client.get(url.replace("{ticket}", str(world.ticket_id)))
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
