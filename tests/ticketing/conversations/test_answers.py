"""A turn's answers: born leased to the gateway that sends them when nothing is ahead of them,
otherwise queued behind what is pending; the same rows either way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ticketing.conversations import answers, outbox
from ticketing.core import errors
from ticketing.core.models import OutboxMessage
from ticketing.shop import customers
from tests.ticketing.desk_setup import NOW

LEASE = timedelta(seconds=30)


def stored(session, ids: list[int]) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))
                                .order_by(OutboxMessage.id)))


def test_born_leased_in_order_and_recorded_in_one_go(session, make) -> None:
    customer = make.customer()
    customers.identity_for(session, channel="widget", external_id="v-born")
    customers.link_identity(session, channel="widget", external_id="v-born",
                            customer_id=customer.id, method="widget_token")
    queued = answers.queue(session, conversation_id="widget:v-born", language="en-US",
                           answers=[("first", {"reply_to": 7}),
                                    ("second", {"buttons": [{"title": "Yes", "payload": "/y"}]})],
                           lease_seconds=LEASE.total_seconds(), now=NOW)
    assert queued is not None and [m.text for m in queued] == ["first", "second"]
    rows = stored(session, [m.id for m in queued])
    assert [(r.id, r.text, r.kind, r.language, r.customer_id, r.payload) for r in rows] == [
        (queued[0].id, "first", "bot", "en", customer.id, {"reply_to": 7}),
        (queued[1].id, "second", "bot", "en", customer.id,
         {"buttons": [{"title": "Yes", "payload": "/y"}]})]
    assert queued[0].id < queued[1].id
    assert {(r.created_at, r.next_attempt_at, r.attempts, r.delivered_at) for r in rows} == {
        (NOW, NOW + LEASE, 0, None)}
    assert outbox.due(session, now=NOW + LEASE / 3) == []  # no poller takes them meanwhile
    assert outbox.has_pending(session, conversation_id="widget:v-born")
    ids = [m.id for m in queued]
    assert outbox.mark_delivered_many(session, message_ids=ids, now=NOW) == 2
    assert outbox.mark_delivered_many(session, message_ids=ids, now=NOW + LEASE) == 0
    assert outbox.mark_delivered_many(session, message_ids=[]) == 0
    assert {r.delivered_at for r in stored(session, ids)} == {NOW}
    assert not outbox.has_pending(session, conversation_id="widget:v-born")


def test_behind_a_pending_row_or_without_a_lease_they_queue_for_the_poll(session) -> None:
    """An anonymous visitor (no customer) with an earlier answer still undelivered."""
    earlier = outbox.enqueue(session, customer_id=None, conversation_id="widget:v-q",
                             kind="bot", text="earlier", now=NOW)
    assert answers.queue(session, conversation_id="widget:v-q", language="zh",
                         answers=[("后来", {})], lease_seconds=30, now=NOW) is None
    assert answers.queue(session, conversation_id="widget:v-other", language="zh",
                         answers=[("没有租约", {})], lease_seconds=None, now=NOW) is None
    due = outbox.due(session, now=NOW)
    assert [(m.conversation_id, m.text) for m in due] == [
        ("widget:v-q", "earlier"), ("widget:v-other", "没有租约")]  # the second waits its turn
    outbox.mark_delivered(session, message_id=earlier.id, now=NOW)
    assert [m.text for m in outbox.due(session, now=NOW)] == ["后来", "没有租约"]
    assert {m.customer_id for m in outbox.due(session, now=NOW)} == {None}


@pytest.mark.parametrize("kwargs", [
    {"answers": [("好的", {}), ("  ", {})]},
    {"answers": []},
    {"conversation_id": ""},
])
def test_bad_answers_write_nothing(session, kwargs) -> None:
    call = {"conversation_id": "widget:v-bad", "answers": [("好的", {})], "language": "zh",
            "lease_seconds": 30, **kwargs}
    with pytest.raises(errors.ValidationError):
        answers.queue(session, **call)
    assert session.scalars(select(OutboxMessage)).all() == []
