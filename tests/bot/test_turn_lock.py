"""The turn lock on its own: exclusive, first come first served, renewed, safe to release,
and failing open when Redis or PostgreSQL cannot be reached."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.gateway.conversation_lock import PostgresTurnLock, RedisTurnLock, redis_keys
from bot.gateway.lanes import Lanes
from tests.conftest import REDIS_URL


def _aredis():
    import redis.asyncio as aredis

    return aredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)


async def _contend(lock_of, n: int, hold: float = 0.12, gap: float = 0.05) -> list[int]:
    """``n`` holders (each with its own lock object, as separate processes would) arrive
    ``gap`` apart (wide enough for a loaded machine: arrival is when the request reaches the
    server); returns the order they got the turn, checking nobody overlapped."""
    order: list[int] = []
    inside = 0

    async def one(i: int) -> None:
        nonlocal inside
        async with lock_of(i).hold("widget:v-lock") as held:
            assert held
            inside += 1
            assert inside == 1, "two holders at once"
            order.append(i)
            await asyncio.sleep(hold)
            inside -= 1

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(gap)
    await asyncio.gather(*tasks)
    return order


def test_redis_lock_is_exclusive_and_first_come_first_served(redis_client) -> None:
    async def scenario() -> list[int]:
        clients = [_aredis() for _ in range(3)]
        locks = [RedisTurnLock(c, ttl=2.0) for c in clients]
        try:
            for c in clients:
                await c.ping()  # connected, as a running gateway is
            return await _contend(lambda i: locks[i % 3], 8)
        finally:
            for c in clients:
                await c.aclose()
    assert asyncio.run(scenario()) == list(range(8))
    assert not redis_client.exists(redis_keys("widget:v-lock")[0])  # released


def test_redis_lock_is_renewed_during_a_long_turn_and_lapses_after_a_kill(redis_client) -> None:
    async def scenario() -> None:
        a, b = _aredis(), _aredis()
        first, second = RedisTurnLock(a, ttl=0.3), RedisTurnLock(b, ttl=0.3, max_wait=5)
        try:
            async with first.hold("c") as held:
                assert held
                waited = asyncio.create_task(_timed(second, "c"))
                await asyncio.sleep(1.0)  # > 3 TTLs: only renewal keeps it
                assert not waited.done()
            assert await waited < 2.5  # handed over at release (1 s), not at the wait bound (5 s)
            # a "killed" holder: the lock is taken and never renewed or released
            await a.set(redis_keys("k")[0], "dead-token", px=300)
            started = time.monotonic()
            async with second.hold("k") as held:
                assert held and time.monotonic() - started >= 0.2
        finally:
            await a.aclose()
            await b.aclose()

    async def _timed(lock: RedisTurnLock, key: str) -> float:
        started = time.monotonic()
        async with lock.hold(key) as held:
            assert held
        return time.monotonic() - started

    asyncio.run(scenario())


def test_release_never_frees_someone_elses_turn(redis_client) -> None:
    async def scenario() -> None:
        client = _aredis()
        lock = RedisTurnLock(client, ttl=0.2)
        try:
            async with lock.hold("c"):
                lock_key = redis_keys("c")[0]
                await client.delete(lock_key)  # lapsed (e.g. a long pause)...
                await client.set(lock_key, "other")  # ...and someone else holds it now
            assert await client.get(lock_key) == b"other"
        finally:
            await client.aclose()
    asyncio.run(scenario())


def test_a_waiter_that_died_does_not_block_the_queue(redis_client) -> None:
    lock_key, queue, alive, _seq = redis_keys("c")
    redis_client.zadd(queue, {"ghost": 0})  # queued first, then killed: never polls again
    redis_client.zadd(alive, {"ghost": 0})

    async def scenario() -> bool:
        client = _aredis()
        try:
            async with RedisTurnLock(client, max_wait=3).hold("c") as held:
                return held
        finally:
            await client.aclose()
    assert asyncio.run(scenario())


def test_a_bounded_wait_then_the_turn_goes_ahead(redis_client) -> None:
    redis_client.set(redis_keys("c")[0], "stuck", px=10_000)

    async def scenario() -> tuple[bool, float]:
        client = _aredis()
        started = time.monotonic()
        try:
            async with RedisTurnLock(client, max_wait=0.3).hold("c") as held:
                return held, time.monotonic() - started
        finally:
            await client.aclose()
    held, waited = asyncio.run(scenario())
    assert not held and 0.3 <= waited < 2


def test_redis_down_fails_open_at_once_to_the_local_lane() -> None:
    import redis.asyncio as aredis

    async def scenario() -> list[bool]:
        dead = aredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        lanes = Lanes(shared=RedisTurnLock(dead))
        seen = []
        try:
            for _ in range(3):
                started = time.monotonic()
                async with lanes.hold("c") as held:
                    seen.append(held)
                assert time.monotonic() - started < 1
        finally:
            await dead.aclose()
        return seen
    assert asyncio.run(scenario()) == [False, False, False]


class _ReleaseHangs:
    """A Redis client whose lock is granted and renewed but whose release never answers
    (a connection stuck mid-command)."""

    def __init__(self) -> None:
        self.releases = 0

    async def eval(self, script: str, *args: object) -> int:
        if "DEL" in script:
            self.releases += 1
            await asyncio.Event().wait()  # forever
        return 1


def test_a_release_that_hangs_does_not_hold_the_turn_open(monkeypatch, caplog) -> None:
    """The turn ends (and the customer hears so) even when releasing its lock hangs: the
    release goes on in the background and the lock lapses after its ttl."""
    from bot.gateway import conversation_lock

    monkeypatch.setattr(conversation_lock, "RELEASE_WAIT", 0.2)
    client = _ReleaseHangs()

    async def scenario() -> float:
        lock = RedisTurnLock(client)
        started = time.monotonic()
        async with Lanes(shared=lock).hold("c") as held:
            assert held
        return time.monotonic() - started
    assert asyncio.run(scenario()) < 1.5
    assert client.releases == 1
    assert "release still pending" in caplog.text


class _SwallowsCancel:
    """A Redis client whose renewal call swallows a cancellation (as a connection's own
    error handling can): before the fix its renewer kept the lock forever."""

    def __init__(self) -> None:
        self.renewals = 0
        self.releases = 0

    async def eval(self, script: str, *args: object) -> int:
        if "PEXPIRE" in script:
            self.renewals += 1
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                pass  # swallowed
            return 1
        if "DEL" in script:
            self.releases += 1
        return 1


def test_a_renewal_that_swallows_its_cancellation_stops_renewing() -> None:
    client = _SwallowsCancel()

    async def scenario() -> tuple[float, int]:
        lock = RedisTurnLock(client, ttl=0.15)  # renews every 50 ms
        started = time.monotonic()
        async with Lanes(shared=lock).hold("c") as held:
            assert held
            await asyncio.sleep(0.12)  # a turn long enough to renew, ending mid-renewal
        ended = time.monotonic() - started
        renewed = client.renewals
        await asyncio.sleep(0.3)  # the renewer must not go on
        return ended, client.renewals - renewed
    ended, later = asyncio.run(scenario())
    assert ended < 1.0 and client.releases == 1
    assert later <= 1  # at most the renewal that was in flight


@pytest.mark.postgres_only
def test_postgres_advisory_lock_is_exclusive_and_in_order(pg_engine) -> None:
    locks = [PostgresTurnLock(pg_engine, max_wait=10) for _ in range(2)]

    async def scenario() -> list[int]:
        try:
            return await _contend(lambda i: locks[i % 2], 6)
        finally:
            for lock in locks:
                await lock.close()
    assert asyncio.run(scenario()) == list(range(6))


@pytest.mark.postgres_only
def test_postgres_lock_wait_is_bounded(pg_engine) -> None:
    async def scenario() -> bool:
        holder, waiter = PostgresTurnLock(pg_engine), PostgresTurnLock(pg_engine, max_wait=0.3)
        try:
            async with holder.hold("c") as held:
                assert held
                async with waiter.hold("c") as waited:
                    return waited
        finally:
            await holder.close()
            await waiter.close()
    assert asyncio.run(scenario()) is False
