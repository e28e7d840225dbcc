"""Issue 13's channel gaps, through the gateway with a scripted assistant (real database):
outbox rows without a conversation reach the customer's newest channel identity, and a guest's
ticket follows the visitor who verifies (Telegram phone, widget sign-in)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.gateway import verification
from bot.gateway.delivery import Delivery
from bot.gateway.messages import Incoming
from ticketing.conversations import outbox
from ticketing.core.models import AuditLog, InboundMessage, OutboxMessage, Ticket
from ticketing.desk import guest_claim, handoffs, ownership, tickets
from ticketing.shop import customers
from tests.bot.test_gateway_core import RecordingChannel, build_rig
from tests.ticketing.desk_setup import build_desk

PHONE = "13900001111"
VISITOR = "v-guest12345"


class TelegramRecorder(RecordingChannel):
    name = "telegram"


@pytest.fixture
def rig(session_factory):
    gateway, rasa, widget = build_rig(session_factory, rasa_timeout=0.3)
    telegram = TelegramRecorder()
    gateway.register(telegram)
    return gateway, rasa, widget, telegram


def tg(text: str, key: str, user: str = "777", **kw: Any) -> Incoming:
    return Incoming(channel="telegram", external_id=user, dedupe_key=f"tg-{user}-{key}",
                    text=text, **kw)


def web(text: str, key: str, visitor: str = VISITOR) -> Incoming:
    return Incoming(channel="widget", external_id=visitor, dedupe_key=f"{visitor}:{key}",
                    text=text)


def poll(gateway) -> None:
    """One pass of the delivery poller, and the deliveries it started."""
    async def run() -> None:
        delivery = Delivery(gateway)
        await delivery.poll_once()
        await asyncio.gather(*list(delivery._tasks))
    asyncio.run(run())


def test_a_desk_ticket_reaches_the_customers_newest_identity(rig, session_factory, make,
                                                             session) -> None:
    desk = build_desk(make)
    customer, stranger = make.customer(), make.customer()
    customers.link_identity(session, channel="widget", external_id=f"c-{customer.id}",
                            customer_id=customer.id)
    customers.link_identity(session, channel="telegram", external_id="555",
                            customer_id=customer.id)
    customers.link_identity(session, channel="telegram", external_id="556",
                            customer_id=stranger.id)
    ticket = tickets.create_ticket(session, customer_id=customer.id, subject="电话来的",
                                   channel="desk", created_by_agent_id=desk.l1.id)
    session.commit()
    gateway, rasa, widget, telegram = rig
    asyncio.run(gateway.receive(tg("你好", "m1", user="555")))  # Telegram: used last
    asyncio.run(gateway.receive(tg("在吗", "m1", user="556")))
    with session_factory.begin() as s:
        tickets.agent_reply(s, ticket_id=ticket.id, agent_id=desk.l1.id, body="您好，关于您的来电")
    poll(gateway)
    assert telegram.texts("555")[-1] == "您好，关于您的来电"
    assert "您好，关于您的来电" not in telegram.texts("556") + widget.texts(f"c-{customer.id}")
    with session_factory() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "agent_reply")).one()
        assert row.conversation_id == "telegram:555" and row.delivered_at is not None


def test_a_customer_with_no_channel_yet_gets_it_when_they_verify(rig, session_factory, make,
                                                                 session) -> None:
    desk = build_desk(make)
    customer = make.customer(phone=PHONE)
    ticket = tickets.create_ticket(session, customer_id=customer.id, subject="电话来的",
                                   channel="desk", created_by_agent_id=desk.l1.id)
    tickets.agent_reply(session, ticket_id=ticket.id, agent_id=desk.l1.id, body="已为您补发")
    session.commit()
    gateway, rasa, widget, telegram = rig
    poll(gateway)  # nowhere to go yet: it waits, backing off, instead of being due every poll
    with session_factory() as s:
        row = s.scalars(select(OutboxMessage)).one()
        assert row.conversation_id is None and row.attempts == 1
        assert row.last_error == outbox.NO_CHANNEL
    code = asyncio.run(verification.verify_phone(gateway, tg("[contact]", "c1", user="888"),
                                                 phone=PHONE, own=True))
    assert code == "verified"
    assert telegram.texts("888")[0] == "已为您补发"  # queued first, delivered first
    assert customer.name in telegram.texts("888")[1]


def test_a_telegram_guests_ticket_becomes_theirs_when_they_verify(rig, session_factory, make,
                                                                  session) -> None:
    desk = build_desk(make)
    customer = make.customer(phone=PHONE, name="李娜")
    session.commit()
    gateway, rasa, widget, telegram = rig
    rasa.down = True
    assert asyncio.run(gateway.receive(tg("我的快递丢了", "m1"))).route == "fallback_ticket"
    rasa.down = False
    with session_factory() as s:
        ticket = handoffs.active_ticket(s, conversation_id="telegram:777")
        guest_id, number = ticket.customer_id, ticket.number
    assert guest_id != customer.id

    code = asyncio.run(verification.verify_phone(gateway, tg("[contact]", "c1"), phone=PHONE,
                                                 own=True))
    assert code == "verified"
    said = telegram.texts("777")[-1]
    assert "李娜" in said and number in said and "工单" in said
    with session_factory.begin() as s:
        ticket = s.get(Ticket, ticket.id)
        assert (ticket.customer_id, ticket.conversation_id) == (customer.id, "telegram:777")
        ownership.claim(s, ticket_id=ticket.id, agent_id=desk.l1.id)
        tickets.agent_reply(s, ticket_id=ticket.id, agent_id=desk.l1.id, body="我来跟进")
    poll(gateway)
    assert telegram.texts("777")[-1] == "我来跟进"
    # later messages go on the same ticket, as one conversation
    assert asyncio.run(gateway.receive(tg("谢谢", "m2"))).route == "ticket"
    # verifying again moves nothing and audits nothing more
    assert asyncio.run(verification.verify_phone(gateway, tg("[contact]", "c2"), phone=PHONE,
                                                 own=True)) == "verified"
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == guest_claim.AUDIT_ACTION)) == 1


def test_a_widget_guests_ticket_follows_them_into_the_signed_in_chat(rig, session_factory,
                                                                     make, session) -> None:
    desk = build_desk(make)
    customer = make.customer(language="en")
    session.commit()
    gateway, rasa, widget, telegram = rig
    rasa.down = True
    assert asyncio.run(gateway.receive(web("parcel lost", "m1"))).route == "fallback_ticket"
    rasa.down = False
    home_id = f"c-{customer.id}"
    with session_factory.begin() as s:  # what the widget's handshake does with a valid token
        customers.link_identity(s, channel="widget", external_id=home_id,
                                customer_id=customer.id, method="widget_token")

    adoption = asyncio.run(verification.signed_in(gateway, customer_id=customer.id,
                                                  visitor=VISITOR, language="en"))
    assert len(adoption.ticket_ids) == 1 and adoption.released == f"widget:{VISITOR}"
    assert rasa.resumed == [f"widget:{VISITOR}"]  # the guest chat's assistant listens again
    asyncio.run(gateway.deliver_now(f"widget:{home_id}"))  # the handshake's flush
    notice = widget.texts(home_id)[-1]
    assert adoption.ticket_numbers[0] in notice and "your account" in notice

    [ticket_id] = adoption.ticket_ids
    with session_factory.begin() as s:
        ticket = s.get(Ticket, ticket_id)
        assert (ticket.customer_id, ticket.conversation_id) == (customer.id, f"widget:{home_id}")
        ownership.claim(s, ticket_id=ticket_id, agent_id=desk.l1.id)
        tickets.agent_reply(s, ticket_id=ticket_id, agent_id=desk.l1.id, body="On it")
    poll(gateway)
    assert widget.texts(home_id)[-1] == "On it"
    assert asyncio.run(gateway.receive(web("thanks", "m2", visitor=home_id))).route == "ticket"
    # the anonymous visitor's own chat is the assistant's again, and sees no ticket
    assert asyncio.run(gateway.receive(web("hello", "m3"))).route == "rasa"
    with session_factory() as s:
        routes = dict(s.execute(select(InboundMessage.dedupe_key,
                                       InboundMessage.ticket_id)).tuples().all())
        assert routes[f"{home_id}:m2"] == ticket_id and routes[f"{VISITOR}:m3"] is None

    again = asyncio.run(verification.signed_in(gateway, customer_id=customer.id,
                                               visitor=VISITOR, language="en"))
    assert again == guest_claim.NOTHING
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.conversation_id == f"widget:{home_id}",
            OutboxMessage.kind == "notice")) == 1


def test_a_sign_in_without_a_guest_past_changes_nothing(rig, session_factory, make,
                                                        session) -> None:
    customer = make.customer()
    customers.link_identity(session, channel="widget", external_id=f"c-{customer.id}",
                            customer_id=customer.id)
    session.commit()
    gateway, rasa, widget, telegram = rig
    for visitor in (None, VISITOR, f"c-{customer.id}"):
        adoption = asyncio.run(verification.signed_in(gateway, customer_id=customer.id,
                                                      visitor=visitor))
        assert adoption == guest_claim.NOTHING
    assert rasa.resumed == []
