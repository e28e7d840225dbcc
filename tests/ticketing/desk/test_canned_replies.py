"""Canned replies: bilingual, placeholders filled in the ticket's language, never a crash."""

from __future__ import annotations

import pytest

from ticketing.core.models import Agent, Customer, Order, Ticket
from ticketing.desk import canned_replies

KEYS = {"greeting", "ask_order_number", "parcel_delayed", "refund_approved", "closing"}


def ticket(language: str) -> Ticket:
    return Ticket(language=language)


CUSTOMER = Customer(name="王芳")
ORDER = Order(number="2026112500001234")
AGENT = Agent(display_name="李小美", first_name="小美")


def test_the_set_is_bilingual_with_known_placeholders_only() -> None:
    assert set(canned_replies.REPLIES) == KEYS
    for reply in canned_replies.REPLIES.values():
        for text in (reply.title.zh, reply.title.en, reply.body.zh, reply.body.en):
            assert text.strip()
        for body in (reply.body.zh, reply.body.en):
            used = set(canned_replies._PLACEHOLDER.findall(body))
            assert used <= set(canned_replies.PLACEHOLDERS), used
    assert dict(canned_replies.options("en"))["parcel_delayed"] == "Parcel delayed: apology"
    assert dict(canned_replies.options("zh"))["closing"] == "结束语"


def test_render_in_chinese_fills_name_order_and_agent() -> None:
    text = canned_replies.render("refund_approved", ticket=ticket("zh"), customer=CUSTOMER,
                                 order=ORDER, agent=AGENT)
    assert text.startswith("王芳，订单 2026112500001234 的退款申请已审核通过")
    greeting = canned_replies.render("greeting", ticket=ticket("zh"), customer=CUSTOMER,
                                     agent=AGENT)
    assert greeting == "王芳，您好！我是客服小美，很高兴为您服务，请问有什么可以帮您？"


def test_render_in_english_follows_the_ticket_not_the_agent() -> None:
    text = canned_replies.render("parcel_delayed", ticket=ticket("en"), customer=CUSTOMER,
                                 order=ORDER, agent=AGENT)
    assert text.startswith("We are very sorry that the parcel for order 2026112500001234")
    closing = canned_replies.render("closing", ticket=ticket("en-GB"), agent=AGENT)
    assert closing.endswith("— 小美")  # customers see the agent's first name (§TERMS-1)


def test_missing_values_leave_a_hint_to_fill_in() -> None:
    zh = canned_replies.render("parcel_delayed", ticket=ticket("zh"))
    assert "[订单号]" in zh
    en = canned_replies.render("ask_order_number", ticket=ticket("en"),
                               customer=Customer(name="guest widget:abc"))
    assert en.startswith("Hi there, could you send me your order number")
    assert "widget:abc" not in en  # a guest's record name is not a name


def test_unknown_placeholders_never_crash() -> None:
    values = canned_replies.values_for(customer=CUSTOMER, order=None, agent=AGENT)
    text = canned_replies.fill("{customer_name} {coupon} {agent_name.__class__} {} {{x}} {",
                               values, language="zh")
    assert text == "王芳 {coupon} {agent_name.__class__} {} {{x}} {"


def test_unknown_key_is_not_found() -> None:
    with pytest.raises(canned_replies.CannedReplyNotFound):
        canned_replies.render("no_such_reply", ticket=ticket("zh"))
