"""The customer outbox: once, in order per conversation, retried with backoff, never lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ticketing.conversations import outbox
from ticketing.core import errors
from ticketing.core.models import OutboxMessage
from tests.ticketing.desk_setup import NOW


def put(session, customer, text, *, conversation="tg-1", at=NOW):
    return outbox.enqueue(session, customer_id=customer.id, conversation_id=conversation,
                          kind="agent_reply", text=text, language="zh-CN", now=at)


def test_enqueue_is_due_at_once(session, make) -> None:
    customer = make.customer()
    message = put(session, customer, "您好", at=NOW)
    assert message.language == "zh" and message.attempts == 0 and message.delivered_at is None
    assert outbox.due(session, now=NOW) == [message]
    assert outbox.due(session, now=NOW - timedelta(seconds=1)) == []


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"text": "  "}, errors.ValidationError),
    ({"kind": ""}, errors.ValidationError),
    ({"kind": "x" * 25}, errors.ValidationError),
    ({"customer_id": 999999}, errors.CustomerNotFound),
])
def test_enqueue_refusals_write_nothing(session, make, kwargs, error) -> None:
    customer = make.customer()
    args = {"customer_id": customer.id, "conversation_id": "c", "kind": "notice", "text": "hi"}
    args.update(kwargs)
    with pytest.raises(error):
        outbox.enqueue(session, now=NOW, **args)
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_one_message_per_conversation_in_order(session, make) -> None:
    customer, other = make.customer(), make.customer()
    a1 = put(session, customer, "a1")
    b1 = put(session, other, "b1", conversation="tg-2")
    a2 = put(session, customer, "a2")
    assert outbox.due(session, now=NOW) == [a1, b1]
    outbox.mark_delivered(session, message_id=a1.id, now=NOW)
    assert outbox.due(session, now=NOW) == [b1, a2]
    assert outbox.due(session, now=NOW, limit=1) == [b1]


def test_a_failing_message_holds_back_the_ones_behind_it(session, make) -> None:
    customer = make.customer()
    first, second = put(session, customer, "first"), put(session, customer, "second")
    outbox.mark_failed(session, message_id=first.id, error="telegram 502", now=NOW)
    assert first.attempts == 1 and first.last_error == "telegram 502"
    assert first.next_attempt_at == NOW + timedelta(seconds=5)
    assert outbox.due(session, now=NOW + timedelta(seconds=4)) == []  # second must not overtake
    assert outbox.due(session, now=NOW + timedelta(seconds=5)) == [first]
    outbox.mark_delivered(session, message_id=first.id, now=NOW + timedelta(seconds=6))
    assert outbox.due(session, now=NOW + timedelta(seconds=6)) == [second]


def test_messages_without_conversation_are_ordered_per_customer(session, make) -> None:
    customer, other = make.customer(), make.customer()
    c1 = put(session, customer, "c1", conversation=None)
    c2 = put(session, customer, "c2", conversation=None)
    o1 = put(session, other, "o1", conversation=None)
    assert outbox.due(session, now=NOW) == [c1, o1]
    outbox.mark_delivered(session, message_id=c1.id, now=NOW)
    assert outbox.due(session, now=NOW) == [c2, o1]


def test_backoff_doubles_up_to_ten_minutes_and_nothing_is_deleted(session, make) -> None:
    customer = make.customer()
    message = put(session, customer, "hi")
    delays = []
    at = NOW
    for _ in range(10):
        outbox.mark_failed(session, message_id=message.id, error="down", now=at)
        delays.append((message.next_attempt_at - at).total_seconds())
        at = message.next_attempt_at
    assert delays == [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]
    assert message.attempts == 10
    assert outbox.backoff(1) == timedelta(seconds=5) and outbox.backoff(30) == timedelta(minutes=10)
    session.flush()
    assert session.get(OutboxMessage, message.id) is message
    assert outbox.pending(session, conversation_id="tg-1") == [message]


def test_mark_delivered_is_idempotent_and_late_failures_are_ignored(session, make) -> None:
    customer = make.customer()
    message = put(session, customer, "hi")
    outbox.mark_delivered(session, message_id=message.id, now=NOW)
    outbox.mark_delivered(session, message_id=message.id, now=NOW + timedelta(minutes=1))
    assert message.delivered_at == NOW
    outbox.mark_failed(session, message_id=message.id, error="timeout", now=NOW)
    assert message.attempts == 0 and message.last_error is None
    assert outbox.due(session, now=NOW + timedelta(days=1)) == []
    with pytest.raises(errors.NotFound):
        outbox.mark_delivered(session, message_id=999999, now=NOW)
    with pytest.raises(errors.NotFound):
        outbox.mark_failed(session, message_id=999999, error="x", now=NOW)


def test_lease_hides_handed_out_messages_from_other_gateways(session, make) -> None:
    customer = make.customer()
    message = put(session, customer, "hi")
    assert outbox.due(session, now=NOW, lease_seconds=30) == [message]
    assert message.next_attempt_at == NOW + timedelta(seconds=30)
    assert outbox.due(session, now=NOW + timedelta(seconds=10)) == []
    assert outbox.due(session, now=NOW + timedelta(seconds=30)) == [message]  # lease ran out


def test_anonymous_visitors_are_owed_messages_by_conversation(session) -> None:
    message = outbox.enqueue(session, customer_id=None, conversation_id="widget:v-12345678",
                             kind="bot", text="您好", now=NOW)
    assert message.customer_id is None
    with pytest.raises(errors.ValidationError):
        outbox.enqueue(session, customer_id=None, conversation_id=None, kind="bot", text="hi")


def test_lease_conversation_takes_rows_in_order_up_to_one_backing_off(session, make) -> None:
    customer = make.customer()
    a, b, c = (put(session, customer, t) for t in ("a", "b", "c"))
    leased = outbox.lease_conversation(session, conversation_id="tg-1", lease_seconds=30, now=NOW)
    assert leased == [a, b, c]
    assert outbox.lease_conversation(session, conversation_id="tg-1", lease_seconds=30,
                                     now=NOW) == []  # leased: nobody else takes them
    outbox.mark_delivered(session, message_id=a.id, now=NOW)
    outbox.mark_failed(session, message_id=b.id, error="timeout", now=NOW)
    later = NOW + timedelta(seconds=31)
    assert outbox.lease_conversation(session, conversation_id="tg-1", lease_seconds=30,
                                     now=later) == [b, c]
    outbox.mark_failed(session, message_id=b.id, error="timeout", now=later)  # backs off 10 s
    assert outbox.lease_conversation(session, conversation_id="tg-1", lease_seconds=30,
                                     now=later + timedelta(seconds=5)) == []  # c waits for b


def test_retry_now_hold_behind_replace_and_recent(session, make) -> None:
    customer = make.customer()
    a, b, c = (put(session, customer, t) for t in ("a", "b", "c"))
    outbox.mark_failed(session, message_id=a.id, error="closed", now=NOW)
    outbox.hold_behind(session, failed_id=a.id, message_ids=[a.id, b.id, c.id])
    assert b.next_attempt_at == c.next_attempt_at == a.next_attempt_at > NOW
    assert outbox.retry_now(session, conversation_id="tg-1") == 3
    assert outbox.lease_conversation(session, conversation_id="tg-1", lease_seconds=30,
                                     now=NOW) == [a, b, c]
    outbox.mark_replaced(session, message_id=a.id, hidden_key="replaced", now=NOW)
    assert a.delivered_at == NOW and a.payload["replaced"] is True
    assert [m.text for m in outbox.recent(session, conversation_id="tg-1", limit=2)] == ["c", "b"]



def test_the_poll_asks_which_conversations_have_something_due(session, make) -> None:
    """``due_streams``: one entry per conversation whose first undelivered row is due; rows
    without a conversation are left to ``route_waiting``."""
    customer = make.customer()
    a1 = put(session, customer, "a1", conversation="tg-a", at=NOW)
    put(session, customer, "a2", conversation="tg-a", at=NOW)  # behind a1
    put(session, customer, "b1", conversation="tg-b", at=NOW + timedelta(seconds=1))
    later = put(session, customer, "c1", conversation="tg-c", at=NOW + timedelta(minutes=5))
    outbox.enqueue(session, customer_id=customer.id, conversation_id=None, kind="notice",
                   text="no chat yet", now=NOW)
    soon = NOW + timedelta(seconds=2)
    assert outbox.due_streams(session, now=soon) == [("tg-a", NOW),
                                                     ("tg-b", NOW + timedelta(seconds=1))]
    assert [m.conversation_id for m in outbox.due(session, now=soon)
            if m.conversation_id] == ["tg-a", "tg-b"]  # the same as the rows' own query
    outbox.mark_delivered(session, message_id=a1.id, now=soon)
    assert [c for c, _ in outbox.due_streams(session, now=soon)] == ["tg-a", "tg-b"]
    assert outbox.due_streams(session, now=NOW - timedelta(seconds=1)) == []
    assert ("tg-c", later.created_at) in outbox.due_streams(session, now=NOW + timedelta(hours=1))
