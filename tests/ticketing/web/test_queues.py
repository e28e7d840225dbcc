"""The agent's queues: contents per role, SLA order, filters, search, no leaks (rules §SEC-5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import event

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.desk_setup import NOW, new_ticket
from tests.ticketing.web.conftest import PASSWORD_HASH, sign_in
from ticketing.core.models import Agent, Role, Segment, TicketMessage
from ticketing.core.pii import PiiCipher
from ticketing.desk import escalation, ownership, tickets

H = timedelta(hours=1)


@dataclass
class Board:
    """Tickets in every queue of frontline agent Li (l1), one of operations (Sun, l3)."""

    ids: dict[str, int]
    numbers: dict[str, str]
    orders: dict[str, str]
    phones: dict[str, str]
    frontline_supervisor: Agent


@pytest.fixture
def board(session_factory, people) -> Board:
    d = people.desk
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        vip = make.customer(name="王VIP", segment=Segment.VIP, phone="13911112222")
        plain = make.customer(name="赵敏", phone="13933334444")
        other = make.customer(name="钱多多", phone="13755556666")
        order_a = make.order(customer=plain)
        order_g = make.order(customer=other)

        def ticket(key: str, customer, hours_ago: float, **kwargs):  # noqa: ANN202
            return new_ticket(s, make, customer=customer, now=NOW - hours_ago * H, **kwargs)

        a = ticket("a", plain, 10, order_id=order_a.id,
                   transcript=[{"author_type": "customer", "body": "包裹在路上停了三天 parcel stuck"}])
        b = ticket("b", vip, 2, subject="快递一直没到，50% 的货还没发")
        c = ticket("c", plain, 5, subject="换个颜色可以吗")
        dd = ticket("d", plain, 30, subject="发票问题")
        # e and f from customers of their own: a second logistics ticket within days would
        # start a step higher (repeated contact, rules §TIER-2)
        e = ticket("e", make.customer(), 1, subject="物流信息不更新")
        f = ticket("f", make.customer(), 1.5, subject="快递丢件了")
        g = ticket("g", other, 3, order_id=order_g.id, subject="运营部的秘密工单 unicorn")
        for t in (a, b, c, dd, f):
            ownership.claim(s, ticket_id=t.id, agent_id=d.l1.id, now=NOW - 0.5 * H)
        ownership.claim(s, ticket_id=g.id, agent_id=d.l3.id, now=NOW - 0.5 * H)
        tickets.wait_for_customer(s, ticket_id=c.id, agent_id=d.l1.id, now=NOW - 0.4 * H)
        tickets.solve(s, ticket_id=dd.id, agent_id=d.l1.id, resolution="开好了", now=NOW - H)
        escalation.escalate(s, ticket_id=f.id, reason="需要物流组", source="agent",
                            by_agent_id=d.l1.id, now=NOW - 0.3 * H)
        s.add(TicketMessage(ticket_id=a.id, at=NOW - 0.2 * H, author_type="agent",
                            author_id=d.l1.id, body="内部备注 internal", internal=True))
        sup = make.agent(team=d.frontline, role=Role.SUPERVISOR, name="Lead")
        sup.password_hash = PASSWORD_HASH
        s.flush()
        all_tickets = {"a": a, "b": b, "c": c, "d": dd, "e": e, "f": f, "g": g}
        board = Board(ids={k: t.id for k, t in all_tickets.items()},
                      numbers={k: t.number for k, t in all_tickets.items()},
                      orders={"a": order_a.number, "g": order_g.number},
                      phones={"b": "13911112222", "g": "13755556666"},
                      frontline_supervisor=sup)
        s.expunge_all()
    return board


def keys(board: Board, response) -> list[str]:
    assert response.status_code == 200, response.text
    by_id = {v: k for k, v in board.ids.items()}
    return [by_id[row["id"]] for row in response.json()["rows"]]


def counts(client) -> dict[str, int]:
    response = client.get("/api/v1/queues")
    assert response.status_code == 200, response.text
    return {q["name"]: q["count"] for q in response.json()["queues"]}


# --- who sees what -------------------------------------------------------------------------------
def test_an_l1_agents_queues(app, people, board) -> None:
    c = sign_in(app, people.desk.l1)
    # mine: nearest running deadline first (VIP b: 4 h budget), the waiting one (paused) last
    assert keys(board, c.get("/api/v1/queues/mine")) == ["b", "a", "f", "c"]
    assert keys(board, c.get("/api/v1/queues/team")) == ["e"]
    assert keys(board, c.get("/api/v1/queues/waiting")) == ["c"]
    assert keys(board, c.get("/api/v1/queues/escalated")) == []
    assert keys(board, c.get("/api/v1/queues/solved")) == ["d"]
    assert counts(c) == {"mine": 4, "team": 1, "waiting": 1, "escalated": 0, "solved": 1}
    assert c.get("/api/v1/queues/all").status_code == 404  # agents have no "all"
    assert c.get("/api/v1/queues/nonsense").status_code == 404


def test_a_row_carries_deadlines_preview_vip_and_names(app, people, board) -> None:
    c = sign_in(app, people.desk.l1)
    rows = {row["id"]: row for row in c.get("/api/v1/queues/mine").json()["rows"]}
    b = rows[board.ids["b"]]
    assert b["vip"] is True and b["customer_name"] == "王VIP" and b["owner_name"] == "Li"
    assert b["priority"] == "high" and b["url"] == f"/tickets/{board.ids['b']}"
    assert {d["kind"] for d in b["deadlines"]} == {"first_response", "resolution"}
    first = next(d for d in b["deadlines"] if d["kind"] == "first_response")
    assert first["status"] == "active" and first["deadline_at"].startswith("2026-03-02T04:00")
    assert b["next_deadline"] == first["deadline_at"]
    a = rows[board.ids["a"]]  # the internal note is never the preview
    assert a["last_message"] == {"text": "包裹在路上停了三天 parcel stuck", "author_type": "customer",
                                 "at": a["last_message"]["at"]}
    waiting = rows[board.ids["c"]]
    assert waiting["next_deadline"] is None
    assert {d["status"] for d in waiting["deadlines"]} == {"paused"}
    assert all(d["remaining_seconds"] > 0 and d["deadline_at"] is None
               for d in waiting["deadlines"])
    assert rows[board.ids["f"]]["assignee_name"] == "Zhao"


def test_escalated_to_me_for_the_specialist(app, people, board) -> None:
    c = sign_in(app, people.desk.l2)
    assert keys(board, c.get("/api/v1/queues/escalated")) == ["f"]
    assert keys(board, c.get("/api/v1/queues/mine")) == ["f"]


def test_another_teams_agent_sees_none_of_frontlines_tickets(app, people, board) -> None:
    """IDOR: operations' Sun neither lists nor finds frontline's tickets, and Li not Sun's."""
    sun = sign_in(app, people.desk.l3)
    seen = set()
    for name in ("mine", "team", "waiting", "escalated", "solved", "search"):
        seen |= set(keys(board, sun.get(f"/api/v1/queues/{name}")))
    assert seen == {"g"}
    for q in (board.numbers["a"], board.orders["a"], board.phones["b"], "包裹", "parcel"):
        assert keys(board, sun.get("/api/v1/queues/search", params={"q": q})) == [], q
    li = sign_in(app, people.desk.l1)
    for q in (board.numbers["g"], board.orders["g"], board.phones["g"], "unicorn", "秘密"):
        assert keys(board, li.get("/api/v1/queues/search", params={"q": q})) == [], q
        page = li.get("/", params={"q": q})
        assert page.status_code == 200 and f'/tickets/{board.ids["g"]}"' not in page.text
        assert 'class="queue-row ' not in page.text
    assert "unicorn" not in li.get("/").text


def test_a_supervisor_sees_their_team_and_has_all(app, people, board) -> None:
    lead = sign_in(app, board.frontline_supervisor)
    tabs = counts(lead)
    assert list(tabs) == ["mine", "team", "waiting", "escalated", "solved", "all"]
    assert set(keys(board, lead.get("/api/v1/queues/all"))) == {"a", "b", "c", "e", "f"}
    assert keys(board, lead.get("/api/v1/queues/team")) == ["e"]
    assert keys(board, lead.get("/api/v1/queues/mine")) == []


def test_a_manager_reads_everything(app, people, board) -> None:
    boss = sign_in(app, people.manager)
    assert list(counts(boss)) == ["all", "team"]
    assert set(keys(board, boss.get("/api/v1/queues/all"))) == {"a", "b", "c", "e", "f", "g"}
    assert keys(board, boss.get("/api/v1/queues/search",
                                params={"q": board.phones["g"]})) == ["g"]
    assert boss.get("/api/v1/queues/mine").status_code == 404


# --- filters and search --------------------------------------------------------------------------
def test_filters_narrow_and_bad_values_are_422(app, people, board) -> None:
    c = sign_in(app, people.desk.l1)
    assert keys(board, c.get("/api/v1/queues/mine", params={"state": "waiting_customer"})) == ["c"]
    assert keys(board, c.get("/api/v1/queues/mine", params={"priority": "high"})) == ["b"]
    assert keys(board, c.get("/api/v1/queues/mine", params={"tier": "2"})) == ["f"]
    assert keys(board, c.get("/api/v1/queues/mine", params={"channel": "widget"})) == []
    assert keys(board, c.get("/api/v1/queues/mine", params={"category": "product"})) == ["c"]
    unfiltered = c.get("/api/v1/queues/mine", params={"category": "", "state": ""})
    assert keys(board, unfiltered) == ["b", "a", "f", "c"]
    for bad in ({"category": "weather"}, {"priority": "asap"}, {"tier": "9"}, {"tier": "x"},
                {"channel": "fax"}, {"state": "lost"}, {"limit": "201"}, {"offset": "-1"},
                {"q": "x" * 201}):
        response = c.get("/api/v1/queues/mine", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_input"
    assert c.get("/", params={"priority": "asap"}).status_code == 422


def test_search_by_number_order_phone_and_text(app, people, board) -> None:
    c = sign_in(app, people.desk.l1)

    def found(q: str) -> list[str]:
        return keys(board, c.get("/api/v1/queues/search", params={"q": q}))

    assert found(board.numbers["d"]) == ["d"]  # solved tickets are found too
    assert found(board.numbers["d"].lower()) == ["d"]
    order = board.orders["a"]
    assert found(f"订单号 {order[:4]}-{order[4:]}") == ["a"]
    assert found("+86 139-1111-2222") == ["b"]
    assert found("13911112223") == []  # exact: one digit off finds nothing
    assert found("PARCEL stuck") == ["a"]  # the thread, case-insensitive
    assert found("0%") == ["b"]  # LIKE wildcards are literal
    assert found("内部备注") == ["a"]  # internal notes are desk text too
    assert keys(board, c.get("/api/v1/queues/mine", params={"q": "发票"})) == []  # d is solved


def test_paging(app, people, board) -> None:
    c = sign_in(app, people.desk.l1)
    first = c.get("/api/v1/queues/mine", params={"limit": 3}).json()
    assert first["total"] == 4 and len(first["rows"]) == 3
    rest = c.get("/api/v1/queues/mine", params={"limit": 3, "offset": 3}).json()
    assert [r["id"] for r in rest["rows"]] == [board.ids["c"]]
    beyond = c.get("/api/v1/queues/mine", params={"offset": 10}).json()
    assert beyond["rows"] == [] and beyond["total"] == 4


# --- the page ------------------------------------------------------------------------------------
def test_the_page_shows_tabs_rows_and_countdowns(app, people, board) -> None:
    c = sign_in(app, people.desk.l1)
    page = c.get("/")
    assert page.status_code == 200 and page.text.lstrip().startswith("<!doctype html>")
    html = page.text
    assert board.numbers["b"] in html and f'href="/tickets/{board.ids["b"]}"' in html
    assert 'data-deadline="2026-03-02T04:00:00+00:00"' in html
    assert 'data-kind="first_response"' in html
    assert "剩 2小时0分" in html  # the server's fallback for b's first response
    assert '<link rel="stylesheet" href="/static/queue.css">' in html
    assert "我的工单" in html and "VIP" in html and "<script>" not in html
    assert " on" + "click=" not in html.lower()
    # htmx: only the rows partial
    partial = c.get("/?queue=team", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.text
    assert board.numbers["e"] in partial.text and board.numbers["b"] not in partial.text
    assert 'aria-current="page"' in partial.text
    # the search box looks through everything visible
    searched = c.get("/", params={"queue": "mine", "q": board.numbers["d"]})
    assert board.numbers["d"] in searched.text and board.numbers["b"] not in searched.text
    assert c.get("/?queue=nope").status_code == 404
    assert c.get("/static/queue.css").status_code == 200


def test_the_page_speaks_english_when_the_agent_chose_it(app, people, board,
                                                         session_factory) -> None:
    with session_factory.begin() as s:
        s.get(Agent, people.desk.l1.id).language = "en"
    html = sign_in(app, people.desk.l1).get("/").text
    assert "Mine" in html and "2h 0m left" in html and "我的工单" not in html


def test_signed_out_gets_401_on_the_api_and_a_redirect_on_the_page(client, board) -> None:
    assert client.get("/api/v1/queues").status_code == 401
    assert client.get("/api/v1/queues/mine").status_code == 401
    page = client.get("/?queue=team", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")


def test_openapi_documents_the_queue_api(client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    rows = spec["paths"]["/api/v1/queues/{name}"]["get"]
    assert {"200", "401", "403", "404", "422"} <= set(rows["responses"])
    assert "QueueRowOut" in spec["components"]["schemas"]
    assert "/api/v1/queues" in spec["paths"]


def test_a_page_load_costs_the_same_few_queries_however_many_rows(app, people, board, engine,
                                                                  session_factory) -> None:
    c = sign_in(app, people.desk.l1)
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if not statement.startswith("BEGIN"):  # SQLite's explicit BEGIN IMMEDIATE
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        c.get("/")
        few = len(statements)
        with session_factory.begin() as s:
            make = Factory(s, PiiCipher(TEST_KEY))
            for n in range(6):
                t = new_ticket(s, make, now=NOW - n * H, transcript=[
                    {"author_type": "customer", "body": f"第{n}个问题"}])
                ownership.claim(s, ticket_id=t.id, agent_id=people.desk.l1.id, now=NOW)
        statements.clear()
        page = c.get("/")
        assert page.text.count('class="queue-row ') == 10
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # the session and its agent, then agent, team, counts, rows, SLA timers, last messages
    assert len(statements) == few <= 8, "\n".join(s[:100] for s in statements)
