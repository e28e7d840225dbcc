"""A conversation's history: what the customer wrote and was shown, in order."""

from __future__ import annotations

from datetime import timedelta

from ticketing.conversations import chat_history, inbound, outbox
from tests.ticketing.desk_setup import NOW

CONV = "widget:v-abcdef12"


def test_history_interleaves_in_and_out_and_hides_replaced_rows(session, make) -> None:
    customer = make.customer()
    inbound.record(session, channel="widget", conversation_id=CONV, dedupe_key="m-1",
                   text="你好", payload={"client_id": "m-1"}, now=NOW)
    outbox.enqueue(session, customer_id=None, conversation_id=CONV, kind="bot", text="您好！",
                   payload={"buttons": [{"title": "查订单", "payload": "/track_order"}]},
                   now=NOW + timedelta(seconds=1))
    survey = outbox.enqueue(session, customer_id=customer.id, conversation_id=CONV,
                            kind="csat_request", text="请评分",
                            payload={"intent": "EXTERNAL_csat_request",
                                     chat_history.HIDDEN: True}, now=NOW + timedelta(seconds=2))
    outbox.enqueue(session, customer_id=customer.id, conversation_id=CONV, kind="agent_reply",
                   text="我是客服小李", payload={"agent": "Li"}, now=NOW + timedelta(seconds=3))
    entries = chat_history.history(session, conversation_id=CONV)
    assert [e.text for e in entries] == ["你好", "您好！", "我是客服小李"]
    assert entries[0].client_id == "m-1" and entries[0].direction == "in"
    assert entries[1].buttons == [{"title": "查订单", "payload": "/track_order"}]
    assert entries[2].agent == "Li" and entries[2].as_dict()["agent"] == "Li"
    assert all(e.id != f"out-{survey.id}" for e in entries)
    assert not entries[1].delivered


def test_transcript_keeps_words_not_clicks_or_agent_replies(session) -> None:
    inbound.record(session, channel="widget", conversation_id=CONV, dedupe_key="m-1",
                   text="/track_order", now=NOW)
    inbound.record(session, channel="widget", conversation_id=CONV, dedupe_key="m-2",
                   text="快递没到", now=NOW + timedelta(seconds=1))
    outbox.enqueue(session, customer_id=None, conversation_id=CONV, kind="bot", text="抱歉",
                   now=NOW + timedelta(seconds=2))
    turns = chat_history.transcript(session, conversation_id=CONV)
    assert [(t["author_type"], t["body"]) for t in turns] == [("customer", "快递没到"),
                                                              ("bot", "抱歉")]


def test_history_is_limited_to_the_newest_entries(session) -> None:
    for n in range(30):
        inbound.record(session, channel="widget", conversation_id=CONV, dedupe_key=f"m-{n}",
                       text=f"第{n}条", now=NOW + timedelta(seconds=n))
    entries = chat_history.history(session, conversation_id=CONV, limit=10)
    assert [e.text for e in entries] == [f"第{n}条" for n in range(20, 30)]
