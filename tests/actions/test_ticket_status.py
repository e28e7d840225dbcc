"""ticket_status: one's own tickets only, plain-words state, owner's first name, next deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from actions.ticket_status import ActionTicketStatus, first_name, number_in
from tests.actions.harness import run, tracker
from ticketing.desk import ownership, tickets
from ticketing.shop import customers
from ticketing.core.clock import utcnow
from ticketing.core.models import Agent, Category, Customer

SENDER = "telegram:777"


def linked(make, session, *, sender: str = SENDER, name: str = "张伟"):
    customer = make.customer(name=name)
    channel, external = sender.split(":")
    customers.link_identity(session, channel=channel, external_id=external,
                            customer_id=customer.id)
    return customer


def ticket_for(session, customer, *, subject: str = "物流/商品问题", language: str = "zh",
               conversation: str = SENDER, now=None):
    return tickets.create_ticket(session, customer_id=customer.id, subject=subject,
                                 channel="telegram", language=language,
                                 category=Category.LOGISTICS, conversation_id=conversation,
                                 text="快递一直没到", now=now)


def claimed_by(make, session, ticket, name: str) -> Agent:
    agent = make.agent(team=make.team(code=f"t{ticket.id}"), name=name)
    ownership.claim(session, ticket_id=ticket.id, agent_id=agent.id)
    return agent


def ask(*, language: str = "zh", text: str | None = None, slots: dict | None = None,
        sender: str = SENDER, entities: list | None = None):
    default = {"zh": "我的工单处理得怎么样了", "en": "any update on my ticket"}[language]
    return tracker(sender_id=sender, slots={"language": language, **(slots or {})},
                   text=text or default, intent="ticket_status", entities=entities)


@pytest.mark.parametrize("language, agent, shown, hidden, words", [
    ("zh", "王芳", "阿芳", "王芳", ["客服正在处理", "负责客服：阿芳", "我们最迟会在", "月"]),
    ("en", "Fang Wang", "Fang", "Wang", ["an agent is working on it", "Your agent: Fang",
                                          "We'll follow up by"]),
])
def test_open_ticket_shows_state_first_name_and_deadline(make, session, action_backend, language,
                                                         agent, shown, hidden, words) -> None:
    alice = linked(make, session)
    ticket = ticket_for(session, alice, language=language)
    claimed_by(make, session, ticket, agent)
    session.commit()
    result = run(ActionTicketStatus(), ask(language=language))
    assert ticket.number in result.text
    for word in words:
        assert word in result.text
    assert hidden not in result.text
    assert result.slots() == {"ticket_number": ticket.number}


def test_a_t_number_in_the_text_is_looked_up(make, session, action_backend) -> None:
    alice = linked(make, session)
    older = ticket_for(session, alice, subject="支付问题")
    ticket_for(session, alice)
    session.commit()
    result = run(ActionTicketStatus(), ask(text=f"工单{older.number}怎么样了"))
    assert older.number in result.text and "支付问题" in result.text
    assert "已收到，正在安排客服接手" in result.text


@pytest.mark.parametrize("language, expected", [
    ("zh", "没有找到这个工单。"), ("en", "We could not find that ticket."),
])
def test_another_customers_ticket_is_not_found_and_nothing_leaks(make, session, action_backend,
                                                                 language, expected) -> None:
    linked(make, session)
    bob = make.customer(name="李雷")
    secret = ticket_for(session, bob, subject="李雷的投诉", conversation="telegram:999")
    claimed_by(make, session, secret, "Kevin Wu")
    session.commit()
    result = run(ActionTicketStatus(), ask(language=language, text=f"status of {secret.number}"))
    assert result.texts == [expected]
    assert "李雷" not in result.text and "Kevin" not in result.text
    assert result.slots() == {"ticket_number": None}


def test_remembered_ticket_number_slot_is_used(make, session, action_backend) -> None:
    alice = linked(make, session)
    first = ticket_for(session, alice, subject="Payment problem", language="en")
    ticket_for(session, alice)
    session.commit()
    result = run(ActionTicketStatus(), ask(language="en", slots={"ticket_number": first.number}))
    assert first.number in result.text and "Payment problem" in result.text


def test_a_malformed_ticket_number_is_explained(make, session, action_backend) -> None:
    linked(make, session)
    session.commit()
    result = run(ActionTicketStatus(), ask(language="en", slots={"ticket_number": "T123"}))
    assert "a T followed by 14 digits" in result.text
    assert result.slots() == {"ticket_number": None}


def test_without_a_number_the_newest_open_tickets_are_listed(make, session, action_backend) -> None:
    alice = linked(make, session)
    now = utcnow()
    made = [ticket_for(session, alice, subject=f"问题{i}", now=now - timedelta(hours=10 - i))
            for i in range(5)]
    agent = claimed_by(make, session, made[0], "Agent")
    tickets.solve(session, ticket_id=made[0].id, agent_id=agent.id, resolution="已补发")
    session.commit()
    result = run(ActionTicketStatus(), ask())
    assert "您有 4 个正在处理的工单" in result.text
    positions = [result.text.index(t.number) for t in (made[4], made[3], made[2])]
    assert positions == sorted(positions)  # newest first
    assert made[1].number not in result.text and "还有 1 个较早的工单" in result.text
    assert made[0].number not in result.text  # solved: not open


def test_no_open_ticket_shows_the_latest_solved_one(make, session, action_backend) -> None:
    alice = linked(make, session)
    ticket = ticket_for(session, alice, language="en", subject="Delivery or item problem")
    agent = claimed_by(make, session, ticket, "Lucy Zhang")
    tickets.solve(session, ticket_id=ticket.id, agent_id=agent.id, resolution="resent")
    session.commit()
    result = run(ActionTicketStatus(), ask(language="en"))
    assert "no open tickets" in result.text and ticket.number in result.text
    assert "solved" in result.text and "resolved on" in result.text
    assert "Lucy" in result.text and "Zhang" not in result.text


def test_waiting_for_the_customer_says_so(make, session, action_backend) -> None:
    alice = linked(make, session)
    ticket = ticket_for(session, alice)
    agent = claimed_by(make, session, ticket, "李小美")
    tickets.wait_for_customer(session, ticket_id=ticket.id, agent_id=agent.id, reason="要照片")
    session.commit()
    result = run(ActionTicketStatus(), ask())
    assert "正在等您回复" in result.text and "您回复后客服会继续处理" in result.text
    assert "我们最迟会在" not in result.text


def test_a_guest_sees_the_guests_tickets(session, action_backend) -> None:
    guest = customers.guest_customer(session, conversation_id="widget:anon-5")
    ticket = ticket_for(session, guest, conversation="widget:anon-5")
    session.commit()
    result = run(ActionTicketStatus(), ask(sender="widget:anon-5"))
    assert ticket.number in result.text


@pytest.mark.parametrize("language, expected", [
    ("zh", "没有找到您的工单"), ("en", "I can't find any tickets of yours"),
])
def test_an_anonymous_visitor_without_tickets_gets_no_guest_record(session, action_backend,
                                                                   language, expected) -> None:
    result = run(ActionTicketStatus(), ask(language=language, sender="widget:anon-6"))
    assert expected in result.text and ("验证身份" in result.text or "verify" in result.text)
    session.rollback()
    assert session.scalars(select(Customer)).all() == []
    assert customers.identity_by_conversation(session, conversation_id="widget:anon-6") is None


def test_an_anonymous_visitor_cannot_look_up_a_number(make, session, action_backend) -> None:
    alice = make.customer()
    ticket = ticket_for(session, alice)
    session.commit()
    result = run(ActionTicketStatus(), ask(sender="widget:anon-8", text=ticket.number))
    assert result.texts == ["没有找到这个工单。"]


@pytest.mark.parametrize("display, chosen, expected", [
    ("王芳", "王芳", "阿芳"),
    ("李小美", "小美", "小美"),
    ("王杰", "阿杰", "阿杰"),
    ("赵敏", "赵敏", "阿敏"),
    ("欧阳娜娜", "欧阳娜娜", "娜娜"),
    ("吴婷婷", "吴婷婷", "婷婷"),
    ("黄丽华", "黄主管", "黄主管"),
    ("郑经理", "郑经理", "郑经理"),
    ("Fang Wang", "Fang Wang", "Fang"),
    ("Lucy Zhang", "Lucy", "Lucy"),
    ("Kevin Wu", "", "Kevin"),
    ("阿依古丽·买买提", "阿依古丽·买买提", "阿依古丽"),
])
def test_first_name_never_shows_the_full_name(display, chosen, expected) -> None:
    agent = Agent(login="x", display_name=display, first_name=chosen)
    assert first_name(agent) == expected


@pytest.mark.parametrize("text, expected", [
    ("工单T20261120000123怎么样了", "T20261120000123"),
    ("ticket t20261120000123?", "T20261120000123"),
    ("T 20261120 000123", "T20261120000123"),
    ("Ｔ２０２６１１２００００１２３", "T20261120000123"),
    ("T2026112000012", None),
    ("order 2026112000000123", None),
])
def test_ticket_numbers_are_found_in_free_text(text, expected) -> None:
    assert number_in(text) == expected
