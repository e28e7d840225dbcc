"""First-contact ownership (rules §OWN-1…§OWN-3, §DISP-1): claim, transfer, route_contact, auto-dispatch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ticketing.core import errors
from ticketing.desk import ownership, routing, tickets
from ticketing.core.models import AuditLog, Availability, Notification, Segment, TicketState
from tests.ticketing.desk_setup import NOW, build_desk, events, new_ticket, snapshot


def test_claim_makes_the_agent_owner_and_opens_the_ticket(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    assert ticket.owner_id == desk.l1.id and ticket.state is TicketState.OPEN
    assert ticket.claimed_at == NOW and ticket.team_id == desk.frontline.id
    [claimed] = events(session, ticket, "claimed")
    assert (claimed.actor_id, claimed.from_value, claimed.to_value) == (desk.l1.id, "new", "open")


def test_second_claim_is_refused_and_reclaiming_own_is_a_no_op(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    before = snapshot(session, ticket)
    with pytest.raises(errors.AlreadyClaimed):
        ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1b.id, now=NOW)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    assert snapshot(session, ticket) == before


def test_claim_refusals(session, make) -> None:
    desk = build_desk(make)
    vip = make.customer(segment=Segment.VIP)
    l2_ticket = new_ticket(session, make, customer=vip, subject="急！快递丢了")
    assert l2_ticket.tier == 2
    before = snapshot(session, l2_ticket)
    with pytest.raises(errors.PermissionDenied):
        ownership.claim(session, ticket_id=l2_ticket.id, agent_id=desk.l1.id, now=NOW)
    with pytest.raises(errors.AgentNotFound):
        ownership.claim(session, ticket_id=l2_ticket.id, agent_id=999999, now=NOW)
    with pytest.raises(errors.TicketNotFound):
        ownership.claim(session, ticket_id=999999, agent_id=desk.l1.id, now=NOW)
    assert snapshot(session, l2_ticket) == before
    ownership.claim(session, ticket_id=l2_ticket.id, agent_id=desk.supervisor.id, now=NOW)
    assert l2_ticket.owner_id == desk.supervisor.id


def test_claim_uses_a_conditional_update_not_the_loaded_row(session, make, session_factory) -> None:
    """Even when this session's copy of the ticket still shows no owner, the database decides."""
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    session.commit()
    with session_factory() as stale:
        stale_ticket = stale.get(type(ticket), ticket.id)
        stale.expunge(stale_ticket)
        stale.rollback()  # end the transaction; the detached copy keeps owner_id=None
        with session_factory.begin() as other:
            ownership.claim(other, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
        stale.add(stale_ticket)
        assert stale_ticket.owner_id is None
        with pytest.raises(errors.AlreadyClaimed):
            ownership.claim(stale, ticket_id=ticket.id, agent_id=desk.l1b.id, now=NOW)
        stale.rollback()
    with session_factory() as check:
        assert check.get(type(ticket), ticket.id).owner_id == desk.l1.id


def test_transfer_by_owner_with_reason_is_logged(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    ownership.transfer(session, ticket_id=ticket.id, to_agent_id=desk.l1b.id,
                       by_agent_id=desk.l1.id, reason="下班交接", now=NOW + timedelta(hours=1))
    assert ticket.owner_id == desk.l1b.id and ticket.state is TicketState.OPEN
    [moved] = events(session, ticket, "transferred")
    assert (moved.actor_id, moved.from_value, moved.to_value, moved.reason) == (
        desk.l1.id, str(desk.l1.id), str(desk.l1b.id), "下班交接")
    [entry] = session.scalars(select(AuditLog).where(AuditLog.action == "ticket.transfer")).all()
    assert entry.actor_id == desk.l1.id and entry.target_id == str(ticket.id)
    [note] = session.scalars(select(Notification)).all()
    assert (note.agent_id, note.kind) == (desk.l1b.id, "transferred")
    assert "下班交接" in note.text_zh


@pytest.mark.parametrize(("by", "to", "reason", "error"), [
    ("l1b", "l2", "help", errors.PermissionDenied),  # not the owner
    ("l1", "l1b", "   ", errors.ValidationError),  # no reason
    ("l1", "l1b", None, errors.ValidationError),
    ("l1", "l1", "self", errors.ValidationError),
    ("l1", "ghost", "x", errors.AgentNotFound),
    ("l1", "gone", "x", errors.AgentNotFound),  # deactivated by an admin
])
def test_transfer_refusals_write_nothing(session, make, by, to, reason, error) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    if to == "gone":
        desk.l2.active = False
        session.flush()
    to_id = {"ghost": 999999, "gone": desk.l2.id}.get(to) or getattr(desk, to).id
    before = snapshot(session, ticket)
    with pytest.raises(error):
        ownership.transfer(session, ticket_id=ticket.id, to_agent_id=to_id,
                           by_agent_id=getattr(desk, by).id, reason=reason, now=NOW)
    assert snapshot(session, ticket) == before


def test_supervisor_transfers_and_assigns(session, make) -> None:
    desk = build_desk(make)
    owned = new_ticket(session, make)
    ownership.claim(session, ticket_id=owned.id, agent_id=desk.l1.id, now=NOW)
    ownership.transfer(session, ticket_id=owned.id, to_agent_id=desk.l2.id,
                       by_agent_id=desk.supervisor.id, reason="物流专家处理", now=NOW)
    assert owned.owner_id == desk.l2.id
    unclaimed = new_ticket(session, make)
    ownership.transfer(session, ticket_id=unclaimed.id, to_agent_id=desk.l1b.id,
                       by_agent_id=desk.supervisor.id, reason="手动分配", now=NOW)
    assert unclaimed.state is TicketState.OPEN and unclaimed.owner_id == desk.l1b.id
    assert unclaimed.claimed_at == NOW


def test_transfer_of_closed_ticket_is_illegal(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="ok", now=NOW)
    tickets.close(session, ticket_id=ticket.id, actor_id=desk.l1.id, now=NOW)
    with pytest.raises(errors.IllegalTransition):
        ownership.transfer(session, ticket_id=ticket.id, to_agent_id=desk.l1b.id,
                           by_agent_id=desk.supervisor.id, reason="x", now=NOW)


def test_route_contact_finds_live_or_recent_ticket_of_the_same_order(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    order_a, order_b = make.order(customer=customer), make.order(customer=customer)
    assert ownership.route_contact(session, customer_id=customer.id, order_id=order_a.id,
                                   now=NOW) is None
    a = new_ticket(session, make, customer=customer, order_id=order_a.id)
    no_order = new_ticket(session, make, customer=customer, now=NOW + timedelta(minutes=1))
    assert ownership.route_contact(session, customer_id=customer.id, order_id=order_a.id,
                                   now=NOW).id == a.id
    assert ownership.route_contact(session, customer_id=customer.id, now=NOW).id == no_order.id
    assert ownership.route_contact(session, customer_id=customer.id, order_id=order_b.id,
                                   now=NOW) is None
    other = make.customer()
    assert ownership.route_contact(session, customer_id=other.id, order_id=order_a.id,
                                   now=NOW) is None
    ownership.claim(session, ticket_id=a.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=a.id, agent_id=desk.l1.id, resolution="ok", now=NOW)

    def find(at, **kw):
        return ownership.route_contact(session, customer_id=customer.id, order_id=order_a.id,
                                       now=at, **kw)

    assert find(NOW + timedelta(days=6, hours=23)).id == a.id
    assert find(NOW + timedelta(days=7, hours=1)) is None
    assert find(NOW + timedelta(days=2), window=timedelta(days=1)) is None


def test_auto_assign_picks_the_least_loaded_available_agent_of_the_tier(session, make) -> None:
    desk = build_desk(make)
    busy = new_ticket(session, make)
    ownership.claim(session, ticket_id=busy.id, agent_id=desk.l1.id, now=NOW)
    fresh = new_ticket(session, make)
    routing.auto_assign(session, ticket_id=fresh.id, now=NOW)
    assert fresh.owner_id == desk.l1b.id  # l1 already has one live ticket
    assert events(session, fresh, "claimed")[0].data["source"] == "auto"
    desk.l1.availability = Availability.OFFLINE
    desk.l1b.max_open_tickets = 1
    session.flush()
    third = new_ticket(session, make)
    before = snapshot(session, third)
    assert routing.auto_assign(session, ticket_id=third.id, now=NOW) is None
    assert snapshot(session, third) == before
    assert routing.auto_assign(session, ticket_id=fresh.id, now=NOW) is None  # already owned


def test_escalation_helper_who_claims_becomes_owner_only(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ticket.assignee_id = desk.supervisor.id  # escalated while still unclaimed
    session.flush()
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.supervisor.id, now=NOW)
    assert ticket.owner_id == desk.supervisor.id
    assert ticket.assignee_id is None
