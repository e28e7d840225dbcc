"""Several gateway processes on one database and one Redis (issue 13, section 2): a
conversation's messages take turns across processes, interrupted turns are answered by the
next replay pass of any gateway exactly once, and outbox wake-ups beat the poll.

Each "process" is a :class:`Gateway` with its own lanes, lock client and delivery, as
``python -m bot`` builds them; the assistant is the scripted one of test_gateway_core.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.gateway.conversation_lock import PostgresTurnLock, RedisTurnLock, TurnLock
from bot.gateway.core import Gateway
from bot.gateway.delivery import Delivery
from bot.gateway.lanes import Lanes
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.ratelimit import RateLimiter
from bot.gateway.replay import Replayer, replay_unhandled
from bot.gateway.settings import GatewaySettings
from bot.gateway.wakeups import WakeupListener
from ticketing.conversations import inbound, outbox, wakeups
from ticketing.core.clock import utcnow
from ticketing.core.db import make_session_factory
from ticketing.core.models import InboundMessage, OutboxMessage
from tests.bot.test_gateway_core import RecordingChannel, ScriptedRasa, msg
from tests.conftest import REDIS_URL, TEST_KEY

CONVERSATION = "widget:v-11111111"


class SerialRasa(ScriptedRasa):
    """One Rasa shared by the gateways, counting turns of one conversation that overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight: dict[str, int] = {}
        self.overlaps = 0

    async def send(self, sender: str, message: str, **speaker: Any) -> list[dict[str, Any]]:
        self.in_flight[sender] = self.in_flight.get(sender, 0) + 1
        if self.in_flight[sender] > 1:
            self.overlaps += 1
        try:
            return await super().send(sender, message)
        finally:
            self.in_flight[sender] -= 1


def gateway_process(session_factory, rasa: ScriptedRasa, shared: TurnLock | None,
                    **settings: Any) -> tuple[Gateway, RecordingChannel, Delivery]:
    gateway = Gateway(settings=GatewaySettings(rasa_timeout=5, rate_limit=1000, **settings),
                      session_factory=session_factory, rasa=rasa,  # type: ignore[arg-type]
                      limiter=RateLimiter(limit=1000, window=60), metrics=GatewayMetrics(),
                      pii_key=TEST_KEY)
    gateway.lanes = Lanes(shared=shared)
    channel = RecordingChannel()
    gateway.register(channel)
    return gateway, channel, Delivery(gateway)


def answers(session_factory, conversation: str = CONVERSATION) -> list[str]:
    with session_factory() as s:
        return list(s.scalars(select(OutboxMessage.text).where(
            OutboxMessage.conversation_id == conversation).order_by(OutboxMessage.id)))


async def interleave(gateways: list[Gateway], count: int, gap: float = 0.04) -> None:
    """Messages 0..count-1 of one conversation, alternating between the gateways, ``gap``
    apart (wide enough on a loaded machine for each to reach the lock before the next)."""
    tasks = []
    for n in range(count):
        gateway = gateways[n % len(gateways)]
        tasks.append(asyncio.create_task(gateway.receive(msg(f"m{n}", f"k{n}"))))
        await asyncio.sleep(gap)
    outcomes = await asyncio.gather(*tasks)
    assert all(o.status == "routed" for o in outcomes)


def _aredis():
    import redis.asyncio as aredis

    return aredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)


# -- one turn at a time, in order, across processes ---------------------------------------------

def test_two_gateways_take_turns_in_order_through_redis(session_factory, redis_client) -> None:
    rasa = SerialRasa()
    rasa.delay = 0.1  # turns overlap the arrivals: most messages wait for the other process

    async def scenario() -> None:
        clients = [_aredis(), _aredis()]
        try:
            for c in clients:
                await c.ping()  # connected, as a running gateway is
            gateways = [gateway_process(session_factory, rasa, RedisTurnLock(c))[0]
                        for c in clients]
            await interleave(gateways, 10)
        finally:
            for c in clients:
                await c.aclose()
    asyncio.run(scenario())
    assert rasa.overlaps == 0
    assert [m for _, m in rasa.sent] == [f"m{n}" for n in range(10)]
    assert answers(session_factory) == [f"echo: m{n}" for n in range(10)]


@pytest.mark.postgres_only
def test_two_gateways_take_turns_in_order_through_postgres(pg_engine, session_factory) -> None:
    rasa = SerialRasa()
    rasa.delay = 0.1
    locks = [PostgresTurnLock(pg_engine, max_wait=10) for _ in range(2)]

    async def scenario() -> None:
        try:
            gateways = [gateway_process(session_factory, rasa, lock)[0] for lock in locks]
            await interleave(gateways, 8)
        finally:
            for lock in locks:
                await lock.close()
    asyncio.run(scenario())
    assert rasa.overlaps == 0
    assert [m for _, m in rasa.sent] == [f"m{n}" for n in range(8)]
    assert answers(session_factory) == [f"echo: m{n}" for n in range(8)]


def test_without_a_shared_lock_two_gateways_overlap(session_factory) -> None:
    """The harness can tell: local lanes alone let two processes run one conversation at once."""
    rasa = SerialRasa()
    rasa.delay = 0.1

    async def scenario() -> None:
        gateways = [gateway_process(session_factory, rasa, None)[0] for _ in range(2)]
        await interleave(gateways, 6)
    asyncio.run(scenario())
    assert rasa.overlaps > 0


# -- interrupted turns: the next replay pass, exactly once --------------------------------------

def _stored_unhandled(session_factory, text: str, key: str, age: float) -> int:
    """What a gateway killed between storing and routing leaves behind."""
    with session_factory.begin() as s:
        row, _ = inbound.record(s, channel="widget", conversation_id=CONVERSATION,
                                dedupe_key=f"v-11111111:{key}", text=text,
                                now=utcnow() - timedelta(seconds=age))
        return row.id


def test_an_interrupted_turn_is_answered_by_the_next_pass_of_either_gateway_once(
        session_factory, redis_client) -> None:
    rasa = SerialRasa()
    _stored_unhandled(session_factory, "还在吗", "killed-1", age=1.0)  # < 5 s before the kill
    _stored_unhandled(session_factory, "在吗", "killed-2", age=0.5)

    async def scenario() -> list[int]:
        clients = [_aredis(), _aredis()]
        try:
            gateways = [gateway_process(session_factory, rasa, RedisTurnLock(c))[0]
                        for c in clients]
            replayers = [Replayer(g, interval=0.1, grace=0.2) for g in gateways]
            return list(await asyncio.gather(*(r.once() for r in replayers)))
        finally:
            for c in clients:
                await c.aclose()
    routed = asyncio.run(scenario())
    assert sum(routed) == 2
    assert [m for _, m in rasa.sent] == ["还在吗", "在吗"]
    assert answers(session_factory) == ["echo: 还在吗", "echo: 在吗"]
    with session_factory() as s:
        assert [r.route for r in s.scalars(select(InboundMessage))] == ["rasa", "rasa"]


def test_the_periodic_pass_answers_without_a_restart(session_factory) -> None:
    """The gateway that runs on (or is restarted) answers within interval + grace."""
    rasa = ScriptedRasa()
    gateway, channel, _delivery = gateway_process(session_factory, rasa, None)

    async def scenario() -> None:
        stopping = asyncio.Event()
        runner = asyncio.create_task(Replayer(gateway, interval=0.1, grace=0.3).run(stopping))
        _stored_unhandled(session_factory, "人呢", "killed", age=0.0)  # stored just now
        deadline = time.monotonic() + 5
        while not channel.delivered and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # more passes: nothing more
        stopping.set()
        await runner
    asyncio.run(scenario())
    assert channel.texts("v-11111111") == ["echo: 人呢"]
    assert rasa.sent == [(CONVERSATION, "人呢")]


def test_without_the_lock_only_messages_older_than_any_turn_are_replayed(
        session_factory) -> None:
    """Redis away (the lock fails open): a young unhandled message may be a live turn in
    another process, so it waits for the long grace; an old one is answered."""
    import redis.asyncio as aredis

    rasa = ScriptedRasa()
    _stored_unhandled(session_factory, "早的", "old", age=60.0)
    _stored_unhandled(session_factory, "新的", "young", age=1.0)

    async def scenario() -> int:
        dead = aredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        try:
            gateway = gateway_process(session_factory, rasa, RedisTurnLock(dead))[0]
            return await Replayer(gateway, interval=1, grace=35, grace_locked=0.5).once()
        finally:
            await dead.aclose()
    assert asyncio.run(scenario()) == 1
    assert rasa.sent == [(CONVERSATION, "早的")]


@pytest.mark.parametrize("shared", ["redis", "none"])
def test_a_live_turn_is_not_replayed_twice(session_factory, shared, request) -> None:
    """Another gateway's pass finds the message while its turn still waits for Rasa: it waits
    for the turn, reads the row again and leaves it."""
    if shared == "redis":
        request.getfixturevalue("redis_client")
    rasa = SerialRasa()
    rasa.delay = 0.5

    async def scenario() -> int:
        clients = [_aredis(), _aredis()] if shared == "redis" else []
        try:
            if clients:
                live, other = (gateway_process(session_factory, rasa, RedisTurnLock(c))[0]
                               for c in clients)
            else:  # one process (SQLite): its own pass shares its lanes
                live = other = gateway_process(session_factory, rasa, None)[0]
            turn = asyncio.create_task(live.receive(msg("慢慢来", "slow")))
            await asyncio.sleep(0.2)  # stored, waiting for Rasa
            replayed = await replay_unhandled(other, older_than=0)
            assert (await turn).route == "rasa"
            return replayed
        finally:
            for c in clients:
                await c.aclose()
    assert asyncio.run(scenario()) == 0
    assert rasa.sent == [(CONVERSATION, "慢慢来")]
    assert answers(session_factory) == ["echo: 慢慢来"]


# -- wake-ups: another process's outbox row, delivered before the poll --------------------------

def test_a_row_queued_elsewhere_is_delivered_at_once_by_the_wake_up(
        engine, session_factory, redis_client) -> None:
    import redis

    desk_factory = make_session_factory(engine)  # "the desk": another process's sessions
    publisher = redis.Redis.from_url(REDIS_URL)
    channel_name = f"test:outbox:{uuid.uuid4()}"  # pub/sub spans Redis databases: our own
    uninstall = wakeups.install(desk_factory, publisher, channel=channel_name)
    gateway, channel, delivery = gateway_process(session_factory, ScriptedRasa(), None,
                                                 outbox_interval=5.0)

    async def scenario() -> float:
        client = _aredis()
        stopping = asyncio.Event()
        listener = WakeupListener(client, delivery, channel=channel_name)
        tasks = [asyncio.create_task(delivery.run(stopping)),
                 asyncio.create_task(listener.run(stopping))]
        try:
            await asyncio.wait_for(listener.subscribed.wait(), 5)
            await asyncio.sleep(0.1)  # the first poll is over: the next one is 5 s away
            started = time.monotonic()
            with desk_factory.begin() as s:
                outbox.enqueue(s, customer_id=None, conversation_id="widget:v-22222222",
                               kind="agent_reply", text="我来处理")
            while not channel.delivered and time.monotonic() - started < 4:
                await asyncio.sleep(0.01)
            return time.monotonic() - started
        finally:
            stopping.set()
            await asyncio.gather(*tasks)
            await client.aclose()
    try:
        took = asyncio.run(scenario())
    finally:
        uninstall()
        publisher.close()
    assert channel.texts("v-22222222") == ["我来处理"]
    assert took < 1.0


class PageChannel(RecordingChannel):
    """A widget channel with its pages (sockets) open on this gateway or not."""

    def __init__(self) -> None:
        super().__init__()
        self.sockets: dict[str, set[object]] = {}

    async def deliver(self, external_id: str, entry: Any) -> None:
        if not self.sockets.get(external_id):
            raise ConnectionError("no page open here")
        await super().deliver(external_id, entry)


def test_a_widget_row_waits_for_the_gateway_with_the_page(session_factory) -> None:
    gateway, _channel, _ = gateway_process(session_factory, ScriptedRasa(), None)
    here = PageChannel()
    gateway.register(here)
    delivery = Delivery(gateway)
    with session_factory.begin() as s:
        outbox.enqueue(s, customer_id=None, conversation_id="widget:v-elsewhere",
                       kind="agent_reply", text="在另一个网关")

    async def scenario() -> None:
        assert await delivery.poll_once() == 0  # young, and no page open here
        delivery.wake("widget:v-elsewhere")
        await delivery.conversation("widget:v-elsewhere")  # what a replay's answer does
        with session_factory() as s:
            assert s.scalars(select(OutboxMessage)).one().attempts == 0  # not tried here
        here.sockets["v-elsewhere"] = {object()}  # the page opens here
        await delivery.conversation("widget:v-elsewhere")
    asyncio.run(scenario())
    assert here.texts("v-elsewhere") == ["在另一个网关"]
    with session_factory() as s:
        assert s.scalars(select(OutboxMessage)).one().attempts == 0  # never counted as failed


def test_past_the_handover_an_unreachable_widget_row_backs_off_as_before(
        session_factory) -> None:
    gateway, _channel, _ = gateway_process(session_factory, ScriptedRasa(), None,
                                           widget_handover=0.0)
    here = PageChannel()
    gateway.register(here)
    delivery = Delivery(gateway)
    with session_factory.begin() as s:
        outbox.enqueue(s, customer_id=None, conversation_id="widget:v-gone", kind="bot",
                       text="没人在")

    async def scenario() -> None:
        assert await delivery.poll_once() == 1
        await asyncio.gather(*delivery._tasks)
    asyncio.run(scenario())
    with session_factory() as s:
        assert s.scalars(select(OutboxMessage)).one().attempts == 1
