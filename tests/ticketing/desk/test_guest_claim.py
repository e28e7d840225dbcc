"""A guest's ticket follows the visitor who verifies (ticketing.desk.guest_claim, issue 13)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ticketing.conversations import outbox
from ticketing.core.errors import CustomerNotFound
from ticketing.core.models import (
    AuditLog,
    Segment,
    Survey,
    Ticket,
    TicketEvent,
    TicketFact,
)
from ticketing.desk import guest_claim, handoffs, ownership, tickets
from ticketing.shop import customers
from tests.ticketing.desk_setup import NOW, build_desk

GUEST = "widget:v-guest0001"
HOME = "widget:c-{}"


def guest_ticket(session, conversation_id: str = GUEST, text: str = "我要找人工"):
    return handoffs.open_for_conversation(session, conversation_id=conversation_id, text=text,
                                          language="zh", now=NOW)


def audits(session) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).where(
        AuditLog.action == guest_claim.AUDIT_ACTION).order_by(AuditLog.id)))


def test_on_the_widget_the_ticket_its_handoff_and_what_is_owed_move_to_the_customer(
        session, make) -> None:
    desk = build_desk(make)
    customer = make.customer(segment=Segment.VIP)
    ticket = guest_ticket(session)
    guest_id = ticket.customer_id
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    reply = outbox.enqueue(session, customer_id=guest_id, conversation_id=GUEST,
                           kind="agent_reply", text="您好，我来处理", ticket_id=ticket.id, now=NOW)
    outbox.mark_failed(session, message_id=reply.id, error="page closed", now=NOW)
    home = HOME.format(customer.id)
    customers.link_identity(session, channel="widget", external_id=f"c-{customer.id}",
                            customer_id=customer.id, method="widget_token", now=NOW)
    later = NOW + timedelta(minutes=5)

    adoption = guest_claim.adopt_guest(session, guest_conversation_id=GUEST,
                                       customer_id=customer.id, conversation_id=home,
                                       method="widget_token", now=later)

    assert adoption.ticket_ids == (ticket.id,) and adoption.ticket_numbers == (ticket.number,)
    assert adoption.guest_customer_id == guest_id and adoption.released == GUEST
    assert ticket.customer_id == customer.id and ticket.conversation_id == home
    # the customer's ticket list, and the desk shows the verified customer
    assert list(session.scalars(select(Ticket.id).where(Ticket.customer_id == customer.id))) \
        == [ticket.id]
    # replies flow into the signed-in chat, due at once; the chat is now the ticket's
    assert (reply.conversation_id, reply.customer_id, reply.attempts) == (home, customer.id, 0)
    assert reply.next_attempt_at <= later
    assert handoffs.active_ticket(session, conversation_id=home).id == ticket.id
    assert handoffs.handed_off_ticket(session, conversation_id=GUEST) is None
    event = session.scalars(select(TicketEvent).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == guest_claim.EVENT)).one()
    assert event.actor_type == "customer" and event.data["guest_customer_id"] == guest_id
    [entry] = audits(session)
    assert entry.actor_id == customer.id and entry.details["ticket_ids"] == [ticket.id]
    assert entry.details["method"] == "widget_token"
    session.commit()  # the reports' facts follow in the same transaction
    fact = session.get(TicketFact, ticket.id)
    assert fact is not None and fact.segment == Segment.VIP.value

    # verifying twice changes nothing
    again = guest_claim.adopt_guest(session, guest_conversation_id=GUEST,
                                    customer_id=customer.id, conversation_id=home,
                                    method="widget_token", now=later)
    assert again == guest_claim.NOTHING and not again.changed
    assert len(audits(session)) == 1
    # the anonymous visitor's own chat is no longer the ticket's
    assert customers.customer_for_conversation(session, conversation_id=GUEST) is None


def test_on_telegram_the_chat_stays_and_the_survey_follows(session, make) -> None:
    desk = build_desk(make)
    customer = make.customer()
    chat = "telegram:9001"
    ticket = guest_ticket(session, chat)
    ownership.claim(session, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
    tickets.solve(session, ticket_id=ticket.id, agent_id=desk.l1.id, resolution="已处理", now=NOW)
    owed = outbox.pending(session, conversation_id=chat)

    adoption = guest_claim.adopt_guest(session, guest_conversation_id=chat,
                                       customer_id=customer.id, method="phone", now=NOW)
    customers.link_identity(session, channel="telegram", external_id="9001",
                            customer_id=customer.id, now=NOW)

    assert adoption.ticket_ids == (ticket.id,) and adoption.released is None
    assert ticket.customer_id == customer.id and ticket.conversation_id == chat
    assert session.scalars(select(Survey.customer_id).where(
        Survey.ticket_id == ticket.id)).one() == customer.id
    assert owed and {(m.conversation_id, m.customer_id) for m in owed} == {(chat, customer.id)}
    assert handoffs.handed_off_ticket(session, conversation_id=chat).id == ticket.id  # unchanged
    assert guest_claim.adopt_guest(session, guest_conversation_id=chat, customer_id=customer.id,
                                   method="phone", now=NOW) == guest_claim.NOTHING


def test_a_live_handoff_of_the_customer_keeps_their_chat(session, make) -> None:
    build_desk(make)
    customer = make.customer()
    home = HOME.format(customer.id)
    customers.link_identity(session, channel="widget", external_id=f"c-{customer.id}",
                            customer_id=customer.id, now=NOW)
    own = handoffs.open_for_conversation(session, conversation_id=home, text="订单问题", now=NOW)
    guest = guest_ticket(session, text="另一个问题，发票")
    adoption = guest_claim.adopt_guest(session, guest_conversation_id=GUEST,
                                       customer_id=customer.id, conversation_id=home,
                                       method="widget_token", now=NOW)
    assert adoption.ticket_ids == (guest.id,) and guest.customer_id == customer.id
    assert handoffs.active_ticket(session, conversation_id=home).id == own.id
    assert handoffs.handed_off_ticket(session, conversation_id=GUEST) is None


@pytest.mark.parametrize("who", ["verified", "real_customer", "shared"])
def test_never_the_tickets_of_another_identity(session, make, who) -> None:
    """Only an unverified identity's own guest record moves; everything else stays put."""
    build_desk(make)
    thief, owner = make.customer(), make.customer()
    if who == "verified":  # a verified identity: its tickets are its customer's
        customers.link_identity(session, channel="widget", external_id="v-guest0001",
                                customer_id=owner.id, now=NOW)
        ticket = guest_ticket(session)
    elif who == "real_customer":  # an unverified identity pointing at a shop customer
        identity = customers.identity_for(session, channel="widget", external_id="v-guest0001")
        identity.customer_id = owner.id
        ticket = tickets.create_ticket(session, customer_id=owner.id, subject="我的订单",
                                       channel="widget", conversation_id=GUEST, now=NOW)
    else:  # a guest record another identity shares
        ticket = guest_ticket(session)
        other = customers.identity_for(session, channel="widget", external_id="v-other0001")
        other.customer_id = ticket.customer_id
    before = ticket.customer_id
    adoption = guest_claim.adopt_guest(session, guest_conversation_id=GUEST,
                                       customer_id=thief.id, conversation_id="widget:c-1",
                                       method="widget_token", now=NOW)
    assert adoption == guest_claim.NOTHING
    assert ticket.customer_id == before and ticket.conversation_id == GUEST
    assert audits(session) == []


def test_nothing_to_take_and_unknown_customers(session, make) -> None:
    customer = make.customer()
    assert guest_claim.adopt_guest(session, guest_conversation_id="widget:v-nobody01",
                                   customer_id=customer.id, method="phone") == guest_claim.NOTHING
    with pytest.raises(CustomerNotFound):
        guest_claim.adopt_guest(session, guest_conversation_id=GUEST, customer_id=999999,
                                method="phone")
    assert session.scalar(select(func.count()).select_from(AuditLog)) == 0
