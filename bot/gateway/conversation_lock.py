"""A conversation's turn held across gateway processes: Redis, else a PostgreSQL advisory lock.

:class:`~bot.gateway.lanes.Lanes` orders a conversation's messages inside one process. With two
or more gateways behind a load balancer, one conversation's messages can land on different
processes, and Rasa would see them overlap or overtake each other. The lock here is taken
inside the local lane, around the same section (store, route, answer), so a conversation has
one turn at a time everywhere.

- Redis (:class:`RedisTurnLock`): ``SET NX PX`` with a random token, released by a Lua
  compare-and-delete (a lapsed holder never frees someone else's turn) and renewed every
  ``ttl/3`` while held, so a long turn keeps it and a killed process loses it after ``ttl``.
  Waiters queue in a per-conversation sorted set (first come, first served); a waiter that
  stops polling for :data:`STALE_MS` is dropped from the queue so it cannot block the rest.
- PostgreSQL without Redis (:class:`PostgresTurnLock`): ``pg_advisory_lock`` on a dedicated
  connection held for the turn. PostgreSQL queues lock waiters in order, and frees the lock by
  itself when the holder's connection dies.
- SQLite: one process, the local lane is enough (:func:`for_deployment` returns None).

Failing open: the lock protects ordering; the database is the system of record. When Redis or
the lock connection cannot be reached, or the wait passes its bound, the turn goes ahead under
the local lane alone (logged) instead of keeping a customer waiting forever. ``hold`` yields
whether the lock is really held, so callers that must not act twice can tell.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("kefu.gateway.lock")

PREFIX = "kefu:turn:"
STALE_MS = 2000  # a waiter that has not polled for this long is gone (killed): skip it
FIRST_POLL, LAST_POLL = 0.005, 0.05  # seconds between a waiter's polls (grows 1.5x per poll)
RELEASE_WAIT = 2.0  # seconds a finished turn waits for its release before moving on
NAMESPACE = 0x4B45  # "KE": the first key of our two-key advisory locks, apart from others'

try:  # redis is a dependency, but the single-machine set-up must import without a server
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover
    RedisError = OSError  # type: ignore[misc,assignment]

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


class TurnLock(Protocol):
    """A lock shared by every gateway process, one key per conversation."""

    def hold(self, key: str) -> Any:
        """``async with lock.hold(key) as held:`` — ``held`` is False when it failed open."""

    async def close(self) -> None:
        """Let go of connections and threads."""


# -- Redis -----------------------------------------------------------------------------------

# KEYS: lock, queue (token by ticket number), alive (token by last poll, ms), ticket counter
# ARGV: token, ttl ms, stale ms
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
end
redis.call('ZADD', KEYS[3], now, ARGV[1])
local stale = tonumber(ARGV[3])
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - stale)) do
  redis.call('ZREM', KEYS[2], gone)
  redis.call('ZREM', KEYS[3], gone)
end
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], stale * 4) end
local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
if head == ARGV[1] and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


def redis_keys(key: str) -> list[str]:
    """The lock and its queue; ``{key}`` keeps them in one Redis Cluster slot."""
    base = f"{PREFIX}{{{key}}}"
    return [base, f"{base}:queue", f"{base}:alive", f"{base}:seq"]


class RedisTurnLock:
    """The turn of a conversation in Redis (``redis.asyncio`` client), fair and self-healing."""

    def __init__(self, client: Any, *, ttl: float = 10.0, max_wait: float = 75.0,
                 retry_after: float = 5.0) -> None:
        self.client = client
        self.ttl_ms = max(int(ttl * 1000), 100)
        self.max_wait = max_wait
        self.retry_after = retry_after  # after a Redis error, skip Redis this long (no stalls)
        self._down_until = 0.0
        self._releasing: set[asyncio.Future[Any]] = set()  # renewals, releases left to finish

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        token = secrets.token_hex(12)
        keys = redis_keys(key)
        held = await self._acquire(keys, token, key)
        stop = asyncio.Event()
        renewer = asyncio.create_task(self._renew(keys, token, key, stop)) if held else None
        try:
            yield held
        finally:
            if renewer is not None:
                # a flag, not only a cancel: a cancellation swallowed inside a Redis call
                # left a renewer renewing forever (the next turns waited 75 s for the lock)
                stop.set()
                renewer.cancel()
                self._in_background(renewer)
                await self._let_go(keys, token, key)

    async def _let_go(self, keys: list[str], token: str, key: str) -> None:
        """Release, waiting at most :data:`RELEASE_WAIT`: the turn is over and its customer
        must hear so (the widget's ``handled``); a release that hangs on a Redis connection
        finishes in the background, and the lock lapses after ``ttl`` anyway (a renewal still
        in flight finds the lock gone and does not bring it back)."""
        cleanup = asyncio.ensure_future(self._call(_RELEASE, keys[:1], token))
        done, _pending = await asyncio.wait({cleanup}, timeout=RELEASE_WAIT)
        if not done:
            self._in_background(cleanup)
            log.warning("turn lock of %s: release still pending after %.0f s, left to finish "
                        "in the background (the lock lapses after %.0f s)", key, RELEASE_WAIT,
                        self.ttl_ms / 1000)

    def _in_background(self, task: asyncio.Future[Any]) -> None:
        if not task.done():
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _acquire(self, keys: list[str], token: str, key: str) -> bool:
        if time.monotonic() < self._down_until:
            return False
        deadline = time.monotonic() + self.max_wait
        pause = FIRST_POLL
        try:
            while True:
                got = await self.client.eval(_ACQUIRE, 4, *keys, token, self.ttl_ms, STALE_MS)
                if int(got) == 1:
                    return True
                if time.monotonic() >= deadline:
                    log.warning("turn of %s still busy after %.0f s: going ahead without it",
                                key, self.max_wait)
                    await self._call(_LEAVE, keys[1:3], token)
                    return False
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, LAST_POLL)
        except REDIS_ERRORS as exc:
            self._down_until = time.monotonic() + self.retry_after
            log.warning("Redis unreachable for the turn lock (%s): local lane and the database "
                        "only, for %.0f s", exc, self.retry_after)
            return False
        except asyncio.CancelledError:
            await asyncio.shield(self._call(_LEAVE, keys[1:3], token))
            raise

    async def _renew(self, keys: list[str], token: str, key: str, stop: asyncio.Event) -> None:
        """Keep the turn while it runs, until ``stop``; a lost lock is logged (the turn still
        finishes)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.ttl_ms / 3000)
                return
            except asyncio.TimeoutError:
                pass
            if stop.is_set():
                return
            try:
                if int(await self.client.eval(_RENEW, 1, keys[0], token, self.ttl_ms)) == 0:
                    log.warning("turn lock of %s lapsed while held", key)
                    return
            except REDIS_ERRORS as exc:
                log.warning("cannot renew the turn lock of %s: %s", key, exc)

    async def _call(self, script: str, keys: list[str], *args: Any) -> None:
        try:
            await self.client.eval(script, len(keys), *keys, *args)
        except REDIS_ERRORS as exc:  # it expires by itself
            log.info("turn lock clean-up skipped: %s", exc)

    async def close(self) -> None:
        return None  # the client belongs to the caller


# -- PostgreSQL --------------------------------------------------------------------------------

class PostgresTurnLock:
    """``pg_advisory_lock`` per conversation, each turn on its own connection of ``engine``.

    Give it an engine of its own (:func:`for_deployment` does): every turn in progress holds
    one connection, and sharing the application's pool would starve the turns' own queries.
    Waits block a thread of a private pool for the same reason (the default executor runs
    the gateway's database work).
    """

    def __init__(self, engine: Engine, *, max_wait: float = 75.0, threads: int = 64,
                 own_engine: bool = False) -> None:
        self.engine = engine
        self.own_engine = own_engine  # dispose of it on close
        self.max_wait = max_wait
        self._executor = ThreadPoolExecutor(max_workers=threads,
                                            thread_name_prefix="kefu-turn-lock")

    def _lock(self, key: str) -> Connection:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            conn.execute(text("SELECT set_config('lock_timeout', :ms, false)"),
                         {"ms": f"{int(self.max_wait * 1000)}ms"})
            conn.execute(text("SELECT pg_advisory_lock(:ns, hashtext(:key))"),
                         {"ns": NAMESPACE, "key": key})
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        return conn

    @staticmethod
    def _unlock(conn: Connection, key: str) -> None:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:ns, hashtext(:key))"),
                         {"ns": NAMESPACE, "key": key})
        except Exception as exc:  # a broken connection: closing it frees the lock server-side
            log.info("advisory unlock failed (%s): dropping the connection", exc)
            conn.invalidate()
        finally:
            conn.close()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        loop = asyncio.get_running_loop()
        waiting = loop.run_in_executor(self._executor, self._lock, key)
        conn: Connection | None = None
        try:
            conn = await asyncio.shield(waiting)
        except asyncio.CancelledError:  # the thread still waits: unlock whenever it gets it
            waiting.add_done_callback(lambda f: None if f.cancelled() or f.exception()
                                      else self._executor.submit(self._unlock, f.result(), key))
            raise
        except Exception as exc:
            log.warning("no advisory lock for %s (%s): local lane and the database only",
                        key, exc)
        try:
            yield conn is not None
        finally:
            if conn is not None:
                await loop.run_in_executor(self._executor, self._unlock, conn, key)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.own_engine:
            self.engine.dispose()


def for_deployment(*, redis: Any, database_url: str, ttl: float,
                   max_wait: float) -> TurnLock | None:
    """The lock a deployment needs: Redis when configured, else PostgreSQL, else none (SQLite)."""
    if redis is not None:
        return RedisTurnLock(redis, ttl=ttl, max_wait=max_wait)
    if database_url.startswith("postgresql"):
        from ticketing.core.db import make_engine

        # its own pool: one connection per turn in progress, beside the gateway's queries
        return PostgresTurnLock(make_engine(database_url, pool_size=4, max_overflow=60,
                                            pool_timeout=max_wait),
                                max_wait=max_wait, own_engine=True)
    return None
