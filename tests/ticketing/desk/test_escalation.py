"""Tiered escalation (rules §TIER-4, §OWN-4): one tier at a time, help joins, the owner stays accountable."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ticketing.core import errors
from ticketing.desk import escalation, ownership, routing, tickets
from ticketing.core.models import Availability, Category, Notification, Role, Survey, TicketState
from tests.ticketing.desk_setup import NOW, build_desk, events, new_ticket, snapshot


def owned(session, make, desk, **kwargs):
    ticket = new_ticket(session, make, **kwargs)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    return ticket


def notes_for(session, agent):
    return session.scalars(select(Notification).where(Notification.agent_id == agent.id)).all()


def test_agent_escalates_to_the_specialist_team_and_stays_owner(session, make) -> None:
    desk = build_desk(make)
    ticket = owned(session, make, desk)
    assert ticket.category is Category.LOGISTICS
    escalation.escalate(session, ticket_id=ticket.id, reason="需要物流组查件", source="agent",
                        by_agent_id=desk.l1.id, now=NOW)
    assert ticket.tier == 2 and ticket.assignee_id == desk.l2.id
    assert ticket.owner_id == desk.l1.id and ticket.team_id == desk.logistics.id
    assert ticket.state is TicketState.OPEN
    [event] = events(session, ticket, "escalated")
    assert (event.actor_type, event.actor_id, event.from_value, event.to_value, event.reason) == (
        "agent", desk.l1.id, "1", "2", "需要物流组查件")
    assert event.data == {"source": "agent", "assignee_id": desk.l2.id, "owner_id": desk.l1.id}
    [note] = notes_for(session, desk.l2)
    assert note.kind == "escalated" and "L2" in note.text_en and ticket.number in note.text_zh
    assert notes_for(session, desk.l1) == []  # the owner did it


def test_escalation_climbs_to_l3_then_stops(session, make) -> None:
    desk = build_desk(make)
    ticket = owned(session, make, desk)
    escalation.escalate(session, ticket_id=ticket.id, reason="r1", source="agent",
                        by_agent_id=desk.l1.id, now=NOW)
    escalation.escalate(session, ticket_id=ticket.id, reason="r2", source="rule", now=NOW)
    assert ticket.tier == 3 and ticket.assignee_id == desk.l3.id
    assert ticket.owner_id == desk.l1.id
    before = snapshot(session, ticket)
    with pytest.raises(errors.TopTierReached) as info:
        escalation.escalate(session, ticket_id=ticket.id, reason="r3", source="sla", now=NOW)
    assert isinstance(info.value, errors.Conflict)
    assert snapshot(session, ticket) == before


def test_sla_breach_escalates_as_the_system_and_tells_the_owner(session, make) -> None:
    desk = build_desk(make)
    ticket = owned(session, make, desk)
    escalation.escalate(session, ticket_id=ticket.id, reason="首次响应超时", source="sla", now=NOW)
    [event] = events(session, ticket, "escalated")
    assert (event.actor_type, event.actor_id, event.data["source"]) == ("system", None, "sla")
    [note] = notes_for(session, desk.l1)
    assert note.kind == "escalated" and "首次响应超时" in note.text_zh


def test_unclaimed_ticket_can_be_escalated_by_the_system(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    escalation.escalate(session, ticket_id=ticket.id, reason="无人接单", source="sla", now=NOW)
    assert ticket.tier == 2 and ticket.assignee_id == desk.l2.id and ticket.owner_id is None
    assert ticket.state is TicketState.NEW


def test_without_a_specialist_team_a_supervisor_helps(session, make) -> None:
    desk = build_desk(make)
    ticket = owned(session, make, desk, subject="登录不了，密码错误")
    assert ticket.category is Category.ACCOUNT
    escalation.escalate(session, ticket_id=ticket.id, reason="需要主管", source="agent",
                        by_agent_id=desk.l1.id, now=NOW)
    assert ticket.assignee_id == desk.supervisor.id


def test_nobody_available_keeps_the_escalation_but_assigns_nobody(session, make) -> None:
    desk = build_desk(make)
    ticket = owned(session, make, desk)
    for agent in (desk.l2, desk.supervisor):
        agent.availability = Availability.AWAY
    session.flush()
    escalation.escalate(session, ticket_id=ticket.id, reason="r", source="rule", now=NOW)
    assert ticket.tier == 2 and ticket.assignee_id is None
    assert events(session, ticket, "escalated")[0].data["assignee_id"] is None


def test_least_loaded_specialist_is_chosen(session, make) -> None:
    desk = build_desk(make)
    second = make.agent(team=desk.logistics, name="Qian")
    busy = owned(session, make, desk)
    escalation.escalate(session, ticket_id=busy.id, reason="r", source="rule", now=NOW)
    assert busy.assignee_id == desk.l2.id  # equal load: lowest id
    other = owned(session, make, desk)
    escalation.escalate(session, ticket_id=other.id, reason="r", source="rule", now=NOW)
    assert other.assignee_id == second.id
    assert routing.loads(session, [desk.l2.id, second.id, desk.l1.id]) == {
        desk.l2.id: 1, second.id: 1, desk.l1.id: 2}


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"source": "agent", "by": "l1b", "reason": "r"}, errors.PermissionDenied),
    ({"source": "agent", "by": None, "reason": "r"}, errors.ValidationError),
    ({"source": "agent", "by": "l1", "reason": "  "}, errors.ValidationError),
    ({"source": "magic", "by": None, "reason": "r"}, errors.ValidationError),
])
def test_escalation_refusals_write_nothing(session, make, kwargs, error) -> None:
    desk = build_desk(make)
    ticket = owned(session, make, desk)
    by = kwargs["by"]
    before = snapshot(session, ticket)
    with pytest.raises(error):
        escalation.escalate(session, ticket_id=ticket.id, reason=kwargs["reason"],
                            source=kwargs["source"],
                            by_agent_id=getattr(desk, by).id if by else None, now=NOW)
    assert snapshot(session, ticket) == before


def test_solved_ticket_cannot_be_escalated(session, make) -> None:
    desk = build_desk(make)
    ticket = owned(session, make, desk)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="ok", now=NOW)
    before = snapshot(session, ticket)
    with pytest.raises(errors.IllegalTransition):
        escalation.escalate(session, ticket_id=ticket.id, reason="r", source="rule", now=NOW)
    assert snapshot(session, ticket) == before


def test_assignee_may_work_the_ticket_and_the_owner_keeps_the_credit(session, make) -> None:
    desk = build_desk(make)
    ticket = owned(session, make, desk)
    escalation.escalate(session, ticket_id=ticket.id, reason="查件", source="agent",
                        by_agent_id=desk.l1.id, now=NOW)
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l2.id, body="物流组已介入",
                        now=NOW)
    # the assignee can escalate further too
    escalation.escalate(session, ticket_id=ticket.id, reason="疑似丢件", source="agent",
                        by_agent_id=desk.l2.id, now=NOW)
    assert ticket.assignee_id == desk.l3.id
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l3.id, resolution="已赔付", now=NOW)
    assert ticket.owner_id == desk.l1.id
    assert session.scalars(select(Survey)).one().agent_id == desk.l1.id


def test_supervisor_role_outside_any_team_is_a_last_resort(session, make) -> None:
    desk = build_desk(make)
    desk.supervisor.availability = Availability.OFFLINE
    manager = make.agent(team=desk.frontline, role=Role.MANAGER, name="Boss")
    session.flush()
    ticket = owned(session, make, desk, subject="密码忘了")
    escalation.escalate(session, ticket_id=ticket.id, reason="r", source="rule", now=NOW)
    assert ticket.assignee_id == manager.id
