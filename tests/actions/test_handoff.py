"""Handoff: a ticket with the transcript, the promise, the marker, and a paused conversation."""

from __future__ import annotations

from sqlalchemy import select

from actions.fallback import ActionFallback
from actions.human_handoff import ActionHandoff
from tests.actions.harness import run, tracker
from ticketing.shop import customers
from ticketing.core.models import Category, ChannelIdentity, Ticket, TicketMessage


def test_human_handoff_opens_a_ticket_and_pauses(make, session, action_backend) -> None:
    alice = make.customer()
    customers.link_identity(session, channel="telegram", external_id="42", customer_id=alice.id)
    session.commit()
    state = tracker(sender_id="telegram:42", slots={"verified": True},
                    text="转人工，你们快递太慢了", intent="human_handoff")
    result = run(ActionHandoff(), state)

    ticket = session.scalars(select(Ticket)).one()
    assert ticket.customer_id == alice.id and ticket.conversation_id == "telegram:42"
    assert ticket.category is Category.LOGISTICS  # triage read "快递"
    assert ticket.number in result.text and "小时内" in result.text
    marker = result.custom[0]["kefu"]
    assert marker["handoff"] is True and marker["ticket_number"] == ticket.number
    assert "pause" in result.event_types()
    assert result.slots()["ticket_number"] == ticket.number
    bodies = session.scalars(select(TicketMessage.body).where(TicketMessage.ticket_id == ticket.id)).all()
    assert "你好" in bodies and "转人工，你们快递太慢了" in bodies
    identity = session.scalars(select(ChannelIdentity)).one()
    session.refresh(identity)
    assert identity.handed_off_ticket_id == ticket.id


def test_anonymous_visitor_gets_a_guest_ticket_in_english(session, action_backend) -> None:
    state = tracker(sender_id="widget:anon-7", slots={"language": "en"},
                    text="I want to complain, nobody answers", intent="complaint")
    result = run(ActionHandoff(), state)
    ticket = session.scalars(select(Ticket)).one()
    assert ticket.language == "en" and ticket.number in result.text
    assert "within" in result.text
    assert customers.customer_for_conversation(session, conversation_id="widget:anon-7") is None


def test_second_fallback_in_a_row_hands_off(session, action_backend) -> None:
    first = run(ActionFallback(), tracker(text="asdf qwer", intent="nlu_fallback"))
    assert first.responses == ["utter_default"] and first.slots() == {"fallback_count": 1.0}
    assert session.scalars(select(Ticket)).all() == []
    session.rollback()  # SQLite: BEGIN IMMEDIATE holds the write lock until the transaction ends
    second = run(ActionFallback(), tracker(text="zxcv", intent="nlu_fallback",
                                           slots={"fallback_count": 1.0}))
    assert session.scalars(select(Ticket)).one().number in second.text
    assert "pause" in second.event_types()


def test_backend_failure_apologises_without_a_stack_trace(session, action_backend, monkeypatch) -> None:
    from ticketing.desk import tickets

    def broken(*_a, **_k):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(tickets, "create_ticket", broken)
    result = run(ActionHandoff(), tracker(text="人工", intent="human_handoff"))
    assert "抱歉" in result.text and "exploded" not in result.text
    assert result.custom[-1]["kefu"]["error"] == "backend_unavailable"


def test_a_complaint_gets_an_apology_before_the_ticket(session, action_backend) -> None:
    state = tracker(sender_id="widget:anon-8", slots={"language": "en"},
                    text="This is the worst service ever, my parcel is lost", intent="complaint")
    result = run(ActionHandoff(), state)
    ticket = session.scalars(select(Ticket)).one()
    apology = result.text.index("I'm really sorry")
    assert apology < result.text.index(ticket.number)  # empathy first, then the process
    # the default first-response budget for a normal ticket reads as people say it
    assert "(within 24 hours)" in result.text


def test_an_angry_message_in_chinese_is_acknowledged_first(session, action_backend) -> None:
    state = tracker(sender_id="widget:anon-9", slots={"language": "zh"},
                    text="太差劲了！！！快递到现在都没到，转人工", intent="human_handoff")
    result = run(ActionHandoff(), state)
    ticket = session.scalars(select(Ticket)).one()
    assert result.text.index("非常抱歉") < result.text.index(ticket.number)
    assert "（24小时内）" in result.text


def test_a_plain_request_for_a_person_gets_no_apology(session, action_backend) -> None:
    state = tracker(sender_id="widget:anon-10", slots={"language": "en"},
                    text="can I talk to a person please", intent="human_handoff")
    result = run(ActionHandoff(), state)
    assert "sorry" not in result.text.lower()


def test_a_broken_or_wrong_item_is_a_quality_ticket_a_lost_parcel_logistics(
        make, session, action_backend) -> None:
    cases = (("widget:q1", "收到的碗碎了好几个", Category.QUALITY),
             ("widget:q2", "you sent me the wrong item", Category.QUALITY),
             ("widget:q3", "my parcel never arrived", Category.LOGISTICS))
    said = {sender: run(ActionHandoff(), tracker(sender_id=sender, slots={"language": "en"},
                                                 text=text, intent="shipping_problem")).text
            for sender, text, _ in cases}
    for sender, text, category in cases:
        ticket = session.scalars(select(Ticket).where(Ticket.conversation_id == sender)).one()
        assert ticket.category is category, text
        assert ticket.number in said[sender]


def test_a_close_call_between_delivery_time_and_tracking_is_answered_not_fallen_back(
        session, action_backend) -> None:
    state = tracker(text="when will it arrive?", intent="nlu_fallback")
    state.latest_message["intent_ranking"] = [
        {"name": "nlu_fallback", "confidence": 0.4}, {"name": "track_order", "confidence": 0.38},
        {"name": "delivery_time", "confidence": 0.33}, {"name": "payment_methods", "confidence": 0.1}]
    result = run(ActionFallback(), state)
    assert result.events == [{"event": "followup", "name": "action_track_order", "timestamp": None}]
    assert result.responses == [] and "fallback_count" not in result.slots()
    state.latest_message["intent_ranking"][2] = {"name": "refund_status", "confidence": 0.33}
    assert run(ActionFallback(), state).responses == ["utter_default"]  # not siblings
