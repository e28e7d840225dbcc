"""rules §REF-2 "the customer is told each result": one outbox message per refund change, none on a
replay, in the language of the channel the customer last used."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ticketing.shop import customers
from ticketing.shop.refunds import flow as refunds, notices as refund_notices
from ticketing.core.clock import utcnow
from ticketing.core.errors import IllegalTransition
from ticketing.core.models import OrderState, OutboxMessage, RefundMethod, RefundState

NOW = utcnow()


def notices(session) -> list[OutboxMessage]:
    return list(session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "refund_update")
        .order_by(OutboxMessage.id)))


def ask(session, order, key: str = "k1", **kw):
    args = dict(customer_id=order.customer_id, order_number=order.number, reason="changed_mind",
                amount_cents=None, method=RefundMethod.ORIGINAL, idempotency_key=key, now=NOW)
    args.update(kw)
    return refunds.request_refund(session, **args)


def test_cancellation_tells_the_customer_once_in_their_language(session, make) -> None:
    customer = make.customer(language="en")
    order = make.order(customer=customer, state=OrderState.PAID)
    refund = ask(session, order)
    [message] = notices(session)
    assert refund.state is RefundState.DONE
    assert message.language == "en" and message.conversation_id is None
    assert message.text == "¥199.00 has been refunded to your original payment method."
    assert message.payload == {"refund_id": refund.id, "order_number": order.number,
                               "state": "done", "amount_cents": 19900}
    assert message.customer_id == customer.id and message.created_at == NOW

    assert ask(session, order).id == refund.id  # idempotent replay: nothing new said
    assert len(notices(session)) == 1


def test_review_path_sends_one_message_per_result(session, make) -> None:
    customer = make.customer(language="en")
    customers.link_identity(session, channel="telegram", external_id="42",
                            customer_id=customer.id, now=NOW - timedelta(days=3))
    newest = customers.link_identity(session, channel="widget", external_id="w1",
                                     customer_id=customer.id, now=NOW)
    newest.created_at = NOW  # the identity the customer used last decides where and how
    newest.language = "zh"
    session.flush()
    order = make.order(customer=customer, state=OrderState.DELIVERED)
    agent = make.agent()

    refund = ask(session, order)
    assert [(m.payload["state"], m.language, m.conversation_id) for m in notices(session)] == [
        ("under_review", "zh", "widget:w1")]
    ask(session, order)
    assert len(notices(session)) == 1

    refunds.review(session, refund_id=refund.id, agent_id=agent.id, approve=True,
                   now=NOW + timedelta(hours=1))
    with pytest.raises(IllegalTransition):  # a second decision changes nothing, says nothing
        refunds.review(session, refund_id=refund.id, agent_id=agent.id, approve=True)
    refunds.complete(session, refund_id=refund.id, now=NOW + timedelta(days=2))
    with pytest.raises(IllegalTransition):
        refunds.complete(session, refund_id=refund.id)

    sent = notices(session)
    assert [m.payload["state"] for m in sent] == ["under_review", "processing", "done"]
    assert "已通过审核" in sent[1].text and "已退回原支付方式" in sent[2].text
    assert {m.payload["refund_id"] for m in sent} == {refund.id}


def test_rejection_tells_the_reason(session, make) -> None:
    customer = make.customer(language="zh")
    identity = customers.link_identity(session, channel="telegram", external_id="7",
                                       customer_id=customer.id, now=NOW)
    identity.language = "en"
    order = make.order(customer=customer, state=OrderState.SHIPPED)
    refund = ask(session, order)
    refunds.review(session, refund_id=refund.id, agent_id=make.agent().id, approve=False,
                   note="the seal is broken")
    last = notices(session)[-1]
    assert last.language == "en" and last.conversation_id == "telegram:7"
    assert last.payload["state"] == "rejected"
    assert last.text.endswith("Reason: the seal is broken")
    assert len(notices(session)) == 2


def test_identity_without_language_falls_back_to_the_customer(session, make) -> None:
    customer = make.customer(language="en")
    customers.link_identity(session, channel="widget", external_id="anon", customer_id=customer.id)
    assert refund_notices.customer_channel(session, customer_id=customer.id) == (
        "en", "widget:anon")
    other = make.customer(language="zh")
    assert refund_notices.customer_channel(session, customer_id=other.id) == ("zh", None)
