"""The supervisors' team board: who sees which team, and the live numbers (load, breaches now,
longest wait, unclaimed) as the tickets make them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.desk_setup import NOW, new_ticket
from tests.ticketing.web.conftest import PASSWORD_HASH, sign_in
from ticketing.core.models import Agent, Availability, Role, SlaTimer, TimerKind
from ticketing.core.pii import PiiCipher
from ticketing.desk import ownership, sla, tickets

H = timedelta(hours=1)


@dataclass
class Scene:
    lead: Agent  # the frontline team's supervisor
    ids: dict[str, int]
    numbers: dict[str, str]


@pytest.fixture
def scene(session_factory, people) -> Scene:
    """Frontline: Li owns a (first reply overdue), b (fresh) and a solved ticket; Wang owns c
    (resolution overdue) and d (its first-reply breach answered since, the customer wrote
    again); two unclaimed tickets, one overdue; a deactivated member."""
    d = people.desk
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))

        def ticket(hours_ago: float, owner: Agent | None, subject: str = "快递三天了还没收到"):
            found = new_ticket(s, make, subject=subject, now=NOW - hours_ago * H)
            assert found.tier == 1
            if owner is not None:
                ownership.claim(s, ticket_id=found.id, agent_id=owner.id,
                                now=NOW - hours_ago * H)
            return found

        a, b = ticket(30, d.l1), ticket(2, d.l1)
        solved = ticket(5, d.l1)
        tickets.agent_reply(s, ticket_id=solved.id, agent_id=d.l1.id, body="好的", now=NOW - 4 * H)
        tickets.solve(s, ticket_id=solved.id, agent_id=d.l1.id, resolution="已处理",
                      now=NOW - 3 * H)
        c = ticket(80, d.l1b)
        tickets.agent_reply(s, ticket_id=c.id, agent_id=d.l1b.id, body="在查", now=NOW - 79 * H)
        dd = ticket(30, d.l1b)
        first = s.scalar(select(SlaTimer.id).where(SlaTimer.ticket_id == dd.id,
                                                    SlaTimer.kind == TimerKind.FIRST_RESPONSE))
        assert sla.fire(s, timer_id=first, now=NOW - 5 * H).action is sla.Action.BREACH
        tickets.agent_reply(s, ticket_id=dd.id, agent_id=d.l1b.id, body="抱歉久等", now=NOW - H)
        tickets.add_customer_message(s, ticket_id=dd.id, body="还有一个问题", now=NOW - 0.5 * H)
        fresh, overdue = ticket(1, None), ticket(25, None)
        lead = make.agent(team=d.frontline, role=Role.SUPERVISOR, name="Lead",
                          availability=Availability.AWAY)
        lead.password_hash = PASSWORD_HASH
        gone = make.agent(team=d.frontline, name="Gone")
        gone.active = False
        s.flush()
        found = {"a": a, "b": b, "c": c, "d": dd, "fresh": fresh, "overdue": overdue}
        scene = Scene(lead=lead, ids={k: t.id for k, t in found.items()},
                      numbers={k: t.number for k, t in found.items()})
        s.expunge_all()
    return scene


def team_of(board: dict, team_id: int) -> dict:
    [team] = [t for t in board["teams"] if t["id"] == team_id]
    return team


def test_the_numbers_of_a_team(app, people, scene) -> None:
    d = people.desk
    board = sign_in(app, scene.lead).get("/api/v1/board").json()
    assert [t["id"] for t in board["teams"]] == [d.frontline.id]  # a supervisor: their own team
    team = board["teams"][0]
    by_name = {a["name"]: a for a in team["agents"]}
    assert list(by_name) == ["Lead", "Li", "Wang"]  # by name; not the deactivated one
    li, wang = by_name["Li"], by_name["Wang"]
    assert (li["open_tickets"], li["max_open_tickets"], li["breaches"]) == (2, 20, 1)
    assert (li["waiting_ticket_id"], li["waiting_since"]) == (
        scene.ids["a"], (NOW - 30 * H).isoformat().replace("+00:00", "Z"))
    assert (wang["open_tickets"], wang["breaches"]) == (2, 1)  # c overdue; d answered since
    assert wang["waiting_ticket_id"] == scene.ids["d"]
    assert datetime.fromisoformat(wang["waiting_since"].replace("Z", "+00:00")) == NOW - 0.5 * H
    assert by_name["Lead"]["availability"] == "away"
    assert (team["online"], team["unclaimed"], team["breaches"]) == (2, 2, 3)


def test_who_sees_which_team(app, people, scene) -> None:
    d = people.desk
    for role_holder in (d.l1, d.l2):
        agent = sign_in(app, role_holder)
        for path in ("/board", "/board/live", "/api/v1/board", "/board?team=nonsense"):
            assert agent.get(path).status_code == 403, path
    lead = sign_in(app, scene.lead)
    assert lead.get(f"/api/v1/board?team={d.frontline.id}").status_code == 200
    assert lead.get(f"/api/v1/board?team={d.logistics.id}").status_code == 403
    assert lead.get(f"/board?team={d.logistics.id}").status_code == 403
    # the CS supervisor (tier 2) watches their own team and the frontline below it
    chief = sign_in(app, d.supervisor).get("/api/v1/board").json()
    assert [t["id"] for t in chief["teams"]] == [d.frontline.id, d.supervisors.id]  # by tier
    assert sign_in(app, d.supervisor).get(
        f"/api/v1/board?team={d.logistics.id}").status_code == 403  # same tier: not theirs
    for boss in (people.manager, people.admin):
        c = sign_in(app, boss)
        every = c.get("/api/v1/board").json()
        assert len(every["teams"]) == 4
        assert team_of(every, d.operations.id)["agents"][0]["name"] == "Sun"  # workers only
        one = c.get(f"/api/v1/board?team={d.logistics.id}").json()
        assert [t["id"] for t in one["teams"]] == [d.logistics.id]
        assert c.get("/api/v1/board?team=999999").status_code == 404
        assert c.get("/board?team=nonsense").status_code == 404


def test_the_page_refreshes_its_live_part_every_30_seconds(app, people, scene) -> None:
    manager = sign_in(app, people.manager)
    page = manager.get(f"/board?team={people.desk.frontline.id}")
    assert page.status_code == 200
    assert 'hx-trigger="every 30s"' in page.text
    assert f'hx-get="/board/live?team={people.desk.frontline.id}"' in page.text
    assert f'<option value="{people.desk.frontline.id}" selected>' in page.text
    assert "style=" not in page.text and "<script>" not in page.text
    live = manager.get(f"/board/live?team={people.desk.frontline.id}")
    assert 'id="board-live"' in live.text and "<html" not in live.text
    assert scene.numbers["a"] in live.text  # Li's longest wait links the ticket
    assert 'class="total-breaches bad">3<' in live.text
    supervisor_page = sign_in(app, scene.lead).get("/board").text
    assert 'hx-get="/board/live"' in supervisor_page and 'name="team"' not in supervisor_page


def test_a_breach_answered_or_solved_leaves_the_board(app, people, scene,
                                                      session_factory) -> None:
    lead = sign_in(app, scene.lead)
    with session_factory.begin() as s:
        tickets.agent_reply(s, ticket_id=scene.ids["a"], agent_id=people.desk.l1.id,
                            body="久等了", now=NOW)
        tickets.solve(s, ticket_id=scene.ids["c"], agent_id=people.desk.l1b.id,
                      resolution="已解决", now=NOW)
    team = lead.get("/api/v1/board").json()["teams"][0]
    by_name = {a["name"]: a for a in team["agents"]}
    assert (by_name["Li"]["breaches"], by_name["Wang"]["breaches"]) == (0, 0)
    assert by_name["Wang"]["open_tickets"] == 1 and team["breaches"] == 1  # the unclaimed one


def test_a_supervisor_without_a_team_sees_an_empty_board(app, people, session_factory) -> None:
    with session_factory.begin() as s:
        loner = Factory(s, PiiCipher(TEST_KEY)).agent(role=Role.SUPERVISOR, name="Loner")
        loner.password_hash = PASSWORD_HASH
        s.flush()
        s.expunge(loner)
    c = sign_in(app, loner)
    assert c.get("/api/v1/board").json()["teams"] == []
    assert "您还没有加入任何团队" in c.get("/board").text
