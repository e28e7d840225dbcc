"""Handing a conversation to a ticket's people and back."""

from __future__ import annotations

from ticketing.conversations import outbox
from ticketing.desk import handoffs, tickets
from ticketing.shop import customers
from ticketing.core.models import TicketState
from tests.ticketing.desk_setup import NOW, build_desk

CONV = "widget:v-abcdef12"


def test_open_for_an_anonymous_visitor_uses_a_guest_and_marks_the_handoff(session, make) -> None:
    build_desk(make)
    ticket = handoffs.open_for_conversation(
        session, conversation_id=CONV, text="机器人坏了，我要退款", language="zh",
        transcript=[{"author_type": "customer", "body": "机器人坏了，我要退款", "at": NOW}], now=NOW)
    assert ticket.conversation_id == CONV and ticket.channel.value == "widget"
    assert handoffs.active_ticket(session, conversation_id=CONV).id == ticket.id
    assert customers.customer_for_conversation(session, conversation_id=CONV) is None  # guest
    again = handoffs.open_for_conversation(session, conversation_id=CONV, text="还在吗",
                                           language="zh", now=NOW)
    assert again.id == ticket.id  # the live ticket gets the contact


def test_a_solved_ticket_no_longer_holds_the_conversation(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    customers.link_identity(session, channel="telegram", external_id="42",
                            customer_id=customer.id, now=NOW)
    ticket = handoffs.open_for_conversation(session, conversation_id="telegram:42",
                                            text="包裹丢了", now=NOW)
    assert ticket.customer_id == customer.id
    assert not handoffs.is_over(session, conversation_id="telegram:42", ticket_id=ticket.id)
    from ticketing.desk import ownership
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="已补发", now=NOW)
    assert ticket.state is TicketState.SOLVED
    assert handoffs.active_ticket(session, conversation_id="telegram:42") is None
    assert handoffs.is_over(session, conversation_id="telegram:42", ticket_id=ticket.id)
    assert handoffs.release(session, conversation_id="telegram:42") == ticket.id
    assert handoffs.release(session, conversation_id="telegram:42") is None
    assert handoffs.handed_off_ticket(session, conversation_id="telegram:42") is None
    assert [m.kind for m in outbox.pending(session, conversation_id="telegram:42")] == [
        "notice", "csat_request"]


def test_the_markers_have_one_key_and_the_documented_shape(session, make) -> None:
    build_desk(make)
    ticket = handoffs.open_for_conversation(session, conversation_id="shell:tester", text="人工",
                                            now=NOW)
    assert ticket.channel.value == "widget"  # a sender of no known channel counts as the widget
    marker = handoffs.handoff_marker(ticket, reason="human_handoff", language="zh")
    assert marker == {handoffs.HANDOFF_MARKER_KEY: {
        "handoff": True, "ticket_id": ticket.id, "ticket_number": ticket.number,
        "reason": "human_handoff", "category": ticket.category.value,
        "priority": ticket.priority.value, "language": "zh"}}
    assert handoffs.unavailable_marker(failed_action="action_x", language="en") == {
        "kefu": {"error": "backend_unavailable", "failed_action": "action_x", "language": "en"}}
