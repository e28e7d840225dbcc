"""Telegram polling in exactly one process: the lease in Redis or PostgreSQL, and two
Telegram channels (two gateway processes) against the fake Bot API taking over from each other."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.gateway.core import Gateway
from bot.gateway.delivery import Delivery
from bot.gateway.metrics import GatewayMetrics
from bot.gateway.polling_lease import KEY, AdvisoryLease, RedisLease
from bot.gateway.ratelimit import RateLimiter
from bot.gateway.settings import GatewaySettings
from bot.gateway.telegram import TelegramChannel
from tests.bot.fake_telegram import FakeTelegram
from tests.bot.test_gateway_core import ScriptedRasa
from tests.conftest import REDIS_URL, TEST_KEY

pytestmark = pytest.mark.timeout(60)


def _aredis(url: str = REDIS_URL):
    import redis.asyncio as aredis

    return aredis.Redis.from_url(url, socket_connect_timeout=0.3, socket_timeout=1)


def test_one_holder_at_a_time_and_a_takeover_when_it_lapses(redis_client) -> None:
    async def scenario() -> None:
        a_client, b_client = _aredis(), _aredis()
        a, b = RedisLease(a_client, ttl=1.0), RedisLease(b_client, ttl=1.0)
        try:
            assert await a.acquire() and not await b.acquire()
            assert await a.acquire() and not await b.acquire()  # renewed
            await asyncio.sleep(1.2)  # a stops renewing (killed): the lease lapses
            assert await b.acquire() and not await a.acquire()
            await b.release()  # a clean stop hands over at once
            assert await a.acquire()
            await b.release()  # not the holder: gives nothing back
            assert redis_client.get(KEY) == a.token
        finally:
            await a_client.aclose()
            await b_client.aclose()
    asyncio.run(scenario())


def test_without_redis_the_holder_keeps_polling_and_a_standby_waits_a_lease_first() -> None:
    async def scenario() -> None:
        dead = _aredis("redis://127.0.0.1:1/0")
        holder, standby = RedisLease(dead, ttl=0.3), RedisLease(dead, ttl=0.3)
        holder.held = True  # it held the lease when Redis went away
        try:
            assert await holder.acquire()
            assert not await standby.acquire()
            await asyncio.sleep(0.35)
            assert await standby.acquire()  # fail open: Telegram's 409 and the inbound log
        finally:
            await dead.aclose()
    asyncio.run(scenario())


@pytest.mark.postgres_only
def test_the_advisory_lease_is_freed_when_the_holders_connection_dies(pg_engine) -> None:
    async def scenario() -> None:
        a, b = AdvisoryLease(pg_engine), AdvisoryLease(pg_engine)
        try:
            assert await a.acquire() and not await b.acquire()
            assert await a.acquire()  # still held
            assert a._conn is not None
            a._conn.invalidate()  # the holder's process is killed: PostgreSQL frees the lock
            a._conn = None
            deadline = time.monotonic() + 3  # the server frees it once it sees the socket close
            while not await b.acquire():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert not await a.acquire()
        finally:
            await a.release()
            await b.release()
    asyncio.run(scenario())


def _telegram_gateway(session_factory, tg: FakeTelegram, client, tmp_path: Path,
                      name: str) -> TelegramChannel:
    settings = GatewaySettings(rasa_timeout=5, telegram_token=tg.token,
                               telegram_base_url=tg.base_url,
                               telegram_base_file_url=tg.base_file_url)
    gateway = Gateway(settings=settings, session_factory=session_factory,
                      rasa=ScriptedRasa(), limiter=RateLimiter(limit=100, window=60),  # type: ignore[arg-type]
                      metrics=GatewayMetrics(), pii_key=TEST_KEY)
    channel = TelegramChannel(gateway, attachments_dir=tmp_path / name,
                              lease=RedisLease(client, ttl=1.0))
    gateway.register(channel)
    Delivery(gateway)
    return channel


async def _until(predicate, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def test_two_gateways_poll_telegram_one_at_a_time(session_factory, redis_client,
                                                  tmp_path) -> None:
    user = 730_001

    async def scenario(tg: FakeTelegram) -> None:
        clients = [_aredis(), _aredis()]
        channels = [_telegram_gateway(session_factory, tg, c, tmp_path, f"g{i}")
                    for i, c in enumerate(clients)]
        try:
            for channel in channels:
                await channel.start()
            await asyncio.sleep(0.8)  # a few lease rounds
            assert [c.polling for c in channels].count(True) == 1
            holder = next(c for c in channels if c.polling)
            standby = next(c for c in channels if not c.polling)

            tg.push_text(user, "你好")
            await tg.wait_for_sent_async(user, 1)

            # the holder dies: no renewal, no clean release; the standby takes over
            assert holder._standby is not None and holder.application is not None
            holder._standby.cancel()
            await holder.application.updater.stop()
            took = await _until(lambda: standby.polling, 5)
            assert took < 4  # about a lease (1 s) plus a check (0.33 s), on a loaded machine
            tg.push_text(user, "还在吗")
            sent = await tg.wait_for_sent_async(user, 2)
            assert [m["text"] for m in sent] == ["echo: 你好", "echo: 还在吗"]
        finally:
            for channel in channels:
                await channel.stop()
            for c in clients:
                await c.aclose()

    with FakeTelegram() as tg:
        asyncio.run(scenario(tg))
        time.sleep(0.5)
        assert len(tg.sent(user)) == 2  # each answered once
