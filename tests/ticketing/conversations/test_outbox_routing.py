"""Outbox rows for a customer without a conversation go to their newest channel identity
(issue 13): at queueing time, or by the poll once they have one; never to someone else's."""

from __future__ import annotations

from datetime import timedelta

from ticketing.conversations import addressing, inbound, outbox
from ticketing.shop import customers
from tests.ticketing.desk_setup import NOW


def identity(session, customer, channel: str, external_id: str, *, linked_at=NOW):
    return customers.link_identity(session, channel=channel, external_id=external_id,
                                   customer_id=customer.id, now=linked_at)


def wrote(session, conversation_id: str, at) -> None:
    channel = conversation_id.split(":")[0]
    row, _ = inbound.record(session, channel=channel, conversation_id=conversation_id,
                            dedupe_key=f"{conversation_id}:{at.isoformat()}", text="hi", now=at)
    session.flush()


def owe(session, customer, text: str, *, at=NOW, conversation=None):
    return outbox.enqueue(session, customer_id=customer.id, conversation_id=conversation,
                          kind="agent_reply", text=text, now=at)


def test_newest_is_the_last_message_seen_else_when_linked(session, make) -> None:
    customer = make.customer()
    assert addressing.newest_conversation(session, customer_id=customer.id) is None
    identity(session, customer, "telegram", "1", linked_at=NOW - timedelta(days=3))
    identity(session, customer, "widget", "c-9", linked_at=NOW - timedelta(days=2))
    # no messages yet: the identity linked last
    assert addressing.newest_conversation(session, customer_id=customer.id) == "widget:c-9"
    wrote(session, "telegram:1", NOW - timedelta(days=1))  # Telegram was used since
    assert addressing.newest_conversation(session, customer_id=customer.id) == "telegram:1"
    wrote(session, "widget:c-9", NOW - timedelta(hours=1))
    assert addressing.newest_conversation(session, customer_id=customer.id) == "widget:c-9"


def test_only_the_customers_own_identities_count(session, make) -> None:
    customer, other = make.customer(), make.customer()
    identity(session, other, "telegram", "2")
    wrote(session, "telegram:2", NOW)
    customers.identity_for(session, channel="widget", external_id="v-anonymous1")
    assert addressing.newest_conversation(session, customer_id=customer.id) is None
    row = owe(session, customer, "您好")
    assert row.conversation_id is None  # waits; never to someone else's chat


def test_a_row_without_conversation_is_addressed_when_queued(session, make) -> None:
    customer = make.customer()
    identity(session, customer, "telegram", "3")
    row = owe(session, customer, "工单已受理")
    assert row.conversation_id == "telegram:3"
    assert outbox.due(session, now=NOW) == [row]


def test_a_customer_without_identity_waits_backing_off_then_goes_out_in_order(
        session, make) -> None:
    customer = make.customer()
    first, second = owe(session, customer, "第一条"), owe(session, customer, "第二条")
    assert outbox.route_waiting(session, now=NOW) == set()
    assert first.attempts == 1 and first.last_error == outbox.NO_CHANNEL
    assert first.next_attempt_at == NOW + timedelta(seconds=5)
    assert outbox.route_waiting(session, now=NOW + timedelta(seconds=1)) == set()
    assert first.attempts == 1  # not looked at again until its backoff is over
    assert outbox.due(session, now=NOW + timedelta(seconds=1)) == []

    identity(session, customer, "telegram", "4")
    later = NOW + timedelta(seconds=6)
    assert outbox.route_waiting(session, now=later) == {"telegram:4"}
    assert [first.conversation_id, second.conversation_id] == ["telegram:4", "telegram:4"]
    assert first.attempts == 0 and first.last_error is None and first.next_attempt_at <= later
    assert outbox.due(session, now=later) == [first]  # the order of queueing holds


def test_a_new_row_takes_the_waiting_ones_along_and_cannot_overtake_them(
        session, make) -> None:
    customer = make.customer()
    waiting = owe(session, customer, "早的")
    outbox.route_waiting(session, now=NOW)  # no identity: backing off
    identity(session, customer, "widget", "c-5")
    fresh = owe(session, customer, "晚的", at=NOW + timedelta(seconds=1))
    assert waiting.conversation_id == fresh.conversation_id == "widget:c-5"
    assert waiting.next_attempt_at <= NOW + timedelta(seconds=1)
    assert outbox.due(session, now=NOW + timedelta(seconds=1)) == [waiting]


def test_route_customer_after_a_verification(session, make) -> None:
    customer = make.customer()
    row = owe(session, customer, "发货通知")
    assert addressing.route_customer(session, customer_id=customer.id, now=NOW) is None
    identity(session, customer, "telegram", "6")
    assert addressing.route_customer(session, customer_id=customer.id, now=NOW) == "telegram:6"
    assert row.conversation_id == "telegram:6"


def test_a_chat_verified_as_someone_else_keeps_nothing_of_the_first_customer(
        session, make) -> None:
    first, second = make.customer(), make.customer()
    identity(session, first, "telegram", "7")
    identity(session, first, "widget", "c-70", linked_at=NOW - timedelta(days=1))
    theirs = owe(session, first, "给第一位客户的", conversation="telegram:7")
    anonymous = outbox.enqueue(session, customer_id=None, conversation_id="telegram:7",
                               kind="bot", text="你好", now=NOW)
    identity(session, second, "telegram", "7")  # the same Telegram user, now the second
    assert addressing.readdress(session, conversation_id="telegram:7", customer_id=second.id) == 1
    assert theirs.conversation_id == "widget:c-70"  # the first customer's own chat
    assert anonymous.conversation_id == "telegram:7"  # the chat's own, anonymous: stays
