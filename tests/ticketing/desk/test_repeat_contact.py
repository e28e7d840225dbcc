"""Repeated contact raises priority one step: a reopened ticket, a second ticket within days."""

from __future__ import annotations

from datetime import timedelta

from ticketing.core.models import Priority, TicketState
from ticketing.desk import ownership, repeat_contact, tickets
from tests.ticketing.desk_setup import NOW, build_desk, events, new_ticket


def _solved(session, make, desk, **kwargs):
    ticket = new_ticket(session, make, **kwargs)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="已补发", now=NOW)
    return ticket


def test_a_customer_reopening_a_solved_ticket_raises_its_priority(session, make) -> None:
    desk = build_desk(make)
    ticket = _solved(session, make, desk)
    assert ticket.priority is Priority.NORMAL
    tickets.add_customer_message(session, ticket_id=ticket.id, body="还是没解决",
                                 now=NOW + timedelta(days=1))
    assert ticket.state is TicketState.OPEN and ticket.priority is Priority.HIGH
    raised = events(session, ticket, "priority_raised")
    assert [(e.from_value, e.to_value, e.reason) for e in raised] == [
        ("normal", "high", repeat_contact.REASON_REOPENED)]


def test_a_message_on_a_live_ticket_does_not_raise_it(session, make) -> None:
    desk = build_desk(make)
    ticket = new_ticket(session, make)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.add_customer_message(session, ticket_id=ticket.id, body="在吗",
                                 now=NOW + timedelta(minutes=5))
    assert ticket.priority is Priority.NORMAL and events(session, ticket, "priority_raised") == []


def test_a_second_ticket_within_the_window_starts_one_step_higher(session, make) -> None:
    customer = make.customer()
    first = tickets.create_ticket(session, customer_id=customer.id, subject="快递还没到",
                                  channel="widget", now=NOW)
    second = tickets.create_ticket(session, customer_id=customer.id, subject="快递还没到",
                                   channel="widget", now=NOW + timedelta(days=3))
    later = tickets.create_ticket(session, customer_id=customer.id, subject="快递还没到",
                                  channel="widget", now=NOW + timedelta(days=30))
    other = tickets.create_ticket(session, customer_id=customer.id, subject="这款有货吗，什么颜色",
                                  channel="widget", now=NOW + timedelta(days=30, minutes=1))
    assert other.category is not first.category
    assert (first.priority, second.priority, later.priority, other.priority) == (
        Priority.NORMAL, Priority.HIGH, Priority.NORMAL, Priority.LOW)
    created = events(session, second, "created")[0]
    assert created.data["repeat_contact"] is True


def test_urgent_stays_urgent(session, make) -> None:
    desk = build_desk(make)
    ticket = _solved(session, make, desk)
    ticket.priority = Priority.URGENT
    assert repeat_contact.raise_for_repeat(session, ticket=ticket, now=NOW,
                                           reason=repeat_contact.REASON_REOPENED) is False
    assert ticket.priority is Priority.URGENT and events(session, ticket, "priority_raised") == []
