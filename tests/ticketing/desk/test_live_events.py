"""The live feed: cursors, what each agent may read, gaps of late commits, the wake-up hook."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_KEY
from tests.factories import Factory
from tests.ticketing.desk.test_timer_index import dead_redis
from tests.ticketing.desk_setup import NOW, Desk, build_desk, new_ticket
from ticketing.core.models import TicketEvent
from ticketing.core.pii import PiiCipher
from ticketing.desk import live_events, ownership, tickets
from ticketing.desk.live_events import Cursor, Follower, Mark


@dataclass
class World:
    desk: Desk
    ticket_id: int
    number: str


@pytest.fixture
def world(session_factory: sessionmaker[Session]) -> World:
    """A frontline ticket owned by Li (l1); Zhao (l2, logistics L2) may not see it."""
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        desk = build_desk(make)
        ticket = new_ticket(s, make, subject="我的订单怎么还没发货")
        ownership.claim(s, ticket_id=ticket.id, agent_id=desk.l1.id, now=NOW)
        s.flush()
        found = World(desk, ticket.id, ticket.number)
        s.expunge_all()
    return found


def now_cursor(session_factory) -> Cursor:
    with session_factory() as s:
        cursor, resync = live_events.start_at(s, None)
    assert not resync
    return cursor


def read(session_factory, follower: Follower, agent, language: str = "zh"):
    with session_factory() as s:
        return follower.read(s, agent_id=agent.id, language=language)


def customer_writes(session_factory, world: World, body: str = "请问什么时候发货？") -> None:
    with session_factory.begin() as s:
        tickets.add_customer_message(s, ticket_id=world.ticket_id, body=body, now=NOW)


# --- cursors -----------------------------------------------------------------------------------
def test_a_cursor_survives_its_text_form_and_refuses_anything_else() -> None:
    cursor = Cursor((Mark(120, (117, 118)), Mark(55), Mark(0)))
    assert cursor.encode() == "120~117~118:55:0"
    assert Cursor.parse(cursor.encode()) == cursor
    assert Cursor.parse("10~12~3:1:2") == Cursor((Mark(10, (3,)), Mark(1), Mark(2)))  # 12 ≥ 10
    for bad in (None, "", "1:2", "1:2:3:4", "a:b:c", "-1:2:3", "1:2:3 ; drop", "9" * 30 + ":1:1",
                "1" + "~0" * 65 + ":1:1"):
        assert Cursor.parse(bad) is None, bad


def test_a_reader_starts_now_resumes_a_cursor_and_reloads_when_it_cannot(session_factory,
                                                                          world) -> None:
    start = now_cursor(session_factory)
    with session_factory() as s:
        assert live_events.start_at(s, start.encode()) == (start, False)
        fresh, resync = live_events.start_at(s, "garbage")
        assert resync and fresh.marks[0].last == start.marks[0].last
        ahead = Cursor(tuple(Mark(m.last + 5) for m in start.marks))
        assert live_events.start_at(s, ahead.encode())[1] is True  # another database's cursor


# --- what each agent reads ---------------------------------------------------------------------
def test_a_customer_message_reaches_the_owner_and_not_another_team(session_factory, world) -> None:
    li, zhao = world.desk.l1, world.desk.l2
    for_li, for_zhao = Follower(now_cursor(session_factory)), Follower(now_cursor(session_factory))
    customer_writes(session_factory, world, "请问什么时候发货？\n谢谢")

    got = read(session_factory, for_li, li)
    kinds = {(e.source, e.kind) for e in got}
    assert ("message", "customer_message") in kinds
    assert ("notification", "customer_message") in kinds  # Li owns it: notified too
    message = next(e for e in got if e.source == "message")
    assert message.ticket_id == world.ticket_id and message.number == world.number
    assert message.text == f"{world.number} 客户：请问什么时候发货？ 谢谢"
    assert message.as_dict()["key"] == f"m{message.row_id}"
    assert read(session_factory, for_li, li) == []  # the cursor moved on

    assert read(session_factory, for_zhao, zhao) == []  # not Zhao's to see
    assert for_zhao.cursor == for_li.cursor  # yet Zhao's cursor moved past those rows too


def test_texts_follow_the_readers_language_and_toasts_what_concerns_them(session_factory,
                                                                         world) -> None:
    li, wang = world.desk.l1, world.desk.l1b
    for_li = Follower(now_cursor(session_factory))
    for_wang = Follower(now_cursor(session_factory))
    with session_factory.begin() as s:
        ownership.transfer(s, ticket_id=world.ticket_id, to_agent_id=wang.id, by_agent_id=li.id,
                           reason="下班了", now=NOW)
    [event] = [e for e in read(session_factory, for_li, li, "en") if e.source == "ticket"]
    assert event.kind == "transferred"
    assert event.text == f"{li.display_name} transferred {world.number} to {wang.display_name}"
    assert not event.toast  # Li did it himself

    got = read(session_factory, for_wang, wang, "zh")
    [event] = [e for e in got if e.source == "ticket"]
    assert event.text == f"{li.display_name} 把 {world.number} 转给了 {wang.display_name}"
    assert event.toast  # Wang's ticket now, changed by someone else
    [note] = [e for e in got if e.source == "notification"]
    assert note.kind == "transferred" and note.toast and world.number in note.text


def test_new_tickets_appear_for_the_team_that_serves_them(session_factory, world) -> None:
    wang, zhao = world.desk.l1b, world.desk.l2
    for_wang = Follower(now_cursor(session_factory))
    for_zhao = Follower(now_cursor(session_factory))
    with session_factory.begin() as s:
        make = Factory(s, PiiCipher(TEST_KEY))
        fresh = new_ticket(s, make, subject="发票怎么开")
        number = fresh.number
    created = [e for e in read(session_factory, for_wang, wang, "en") if e.kind == "created"]
    assert [e.text for e in created] == [f"New ticket {number}: 发票怎么开"]
    assert created[0].toast
    assert [e for e in read(session_factory, for_zhao, zhao) if e.kind == "created"] == []


def test_a_big_backlog_is_read_in_bounded_batches(session_factory, world) -> None:
    li = world.desk.l1
    follower = Follower(now_cursor(session_factory))
    for i in range(7):
        customer_writes(session_factory, world, f"第{i}条")
    with session_factory() as s:
        first = follower.read(s, agent_id=li.id, language="zh", limit=3)
        assert follower.more and len([e for e in first if e.source == "message"]) == 3
    rest = []
    while follower.more:
        with session_factory() as s:
            rest += follower.read(s, agent_id=li.id, language="zh", limit=3)
    texts = [e.data["excerpt"] for e in first + rest if e.source == "message"]
    assert texts == [f"第{i}条" for i in range(7)]


# --- late commits ------------------------------------------------------------------------------
class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _event_with_id(session_factory, world: World, row_id: int) -> None:
    with session_factory.begin() as s:
        s.add(TicketEvent(id=row_id, ticket_id=world.ticket_id, at=NOW, kind="note_added",
                          actor_type="system"))


def test_a_row_committed_late_below_the_cursor_is_still_delivered(session_factory, world) -> None:
    """PostgreSQL hands out ids at insert: id n+1 may commit after n+2 was read."""
    li = world.desk.l1
    clock = FakeMonotonic()
    follower = Follower(now_cursor(session_factory), clock=clock)
    base = follower.cursor.marks[0].last + 500  # far above the sequence: no collision
    _event_with_id(session_factory, world, base + 2)
    assert [e.row_id for e in read(session_factory, follower, li)] == [base + 2]
    assert base + 1 in follower.cursor.marks[0].gaps
    assert len(follower.cursor.marks[0].gaps) == live_events.MAX_GAPS  # the newest are kept

    _event_with_id(session_factory, world, base + 1)  # the slow transaction commits
    assert [e.row_id for e in read(session_factory, follower, li)] == [base + 1]
    assert base + 1 not in follower.cursor.marks[0].gaps

    clock.now += live_events.GAP_WAIT + 1  # the other gaps were rollbacks: they expire
    read(session_factory, follower, li)
    assert follower.cursor.marks[0].gaps == ()
    assert not follower.cursor.behind(follower.cursor)


# --- the wake-up after commit ------------------------------------------------------------------
@pytest.fixture
def listening(redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("test:live")
    yield pubsub
    pubsub.close()


def _messages(pubsub, wait: float = 0.5) -> list[str]:
    found, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            found.append(message["data"])
    return found


def test_a_commit_with_feed_rows_publishes_one_wake_up(session_factory, world, redis_client,
                                                       listening) -> None:
    uninstall = live_events.install(session_factory, redis_client, channel="test:live")
    try:
        customer_writes(session_factory, world)  # message + notification + events: one wake-up
        assert _messages(listening) == [live_events.CHANGED]

        with pytest.raises(RuntimeError):
            with session_factory.begin() as s:
                tickets.add_customer_message(s, ticket_id=world.ticket_id, body="x", now=NOW)
                s.flush()
                raise RuntimeError("rolled back")
        with session_factory.begin() as s:
            s.get(TicketEvent, 1)  # a commit that adds nothing to the feed
        assert _messages(listening) == []
    finally:
        uninstall()
    customer_writes(session_factory, world)
    assert _messages(listening) == []  # uninstalled


def test_redis_down_never_fails_a_commit(session_factory, world, caplog) -> None:
    uninstall = live_events.install(session_factory, dead_redis())
    try:
        with caplog.at_level(logging.WARNING, logger="ticketing.desk.live_events"):
            customer_writes(session_factory, world)
    finally:
        uninstall()
    assert "not published" in caplog.text
    follower = Follower(Cursor((Mark(0), Mark(0), Mark(0))))
    assert any(e.kind == "customer_message" for e in read(session_factory, follower, world.desk.l1))
