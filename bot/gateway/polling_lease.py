"""Who polls Telegram: exactly one gateway process at a time holds the polling lease.

Telegram's ``getUpdates`` serves one poller per bot; two gateways polling would fight (409
Conflict) and each would see part of the updates. With a webhook any gateway takes updates and
no lease is needed. The holder renews every ``ttl/3``; the others stand by and try as often,
so when the holder dies (or stops renewing) one of them takes over within about ``ttl``.

- Redis (:class:`RedisLease`): ``SET NX PX`` with a token, renewed and released by Lua
  compare-and-set scripts. While Redis cannot be reached, everyone keeps what they had; after
  ``ttl`` without Redis a standby polls anyway (fail open: Telegram's 409 picks one poller and
  the inbound log drops any update seen twice).
- PostgreSQL without Redis (:class:`AdvisoryLease`): ``pg_try_advisory_lock`` on a connection
  kept open while holding; PostgreSQL frees it when the holder's connection dies.
- SQLite (:class:`SoleLease`): one process, always the holder.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, text

from bot.gateway.conversation_lock import NAMESPACE, REDIS_ERRORS

log = logging.getLogger("kefu.gateway.lease")

KEY = "kefu:telegram:polling"

_TAKE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PollingLease(Protocol):
    ttl: float

    async def acquire(self) -> bool:
        """Take or renew the lease; True while this process is the holder."""

    async def release(self) -> None:
        """Give the lease up now (a clean stop), so a standby need not wait for it to lapse."""


class SoleLease:
    """One process (SQLite): always the holder."""

    def __init__(self, ttl: float = 15.0) -> None:
        self.ttl = ttl

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class RedisLease:
    def __init__(self, client: Any, *, ttl: float = 15.0, key: str = KEY) -> None:
        self.client = client  # a redis.asyncio client
        self.ttl = ttl
        self.key = key
        self.token = secrets.token_hex(12)
        self.held = False
        self._unreachable_since: float | None = None

    async def acquire(self) -> bool:
        try:
            got = int(await self.client.eval(_TAKE, 1, self.key, self.token,
                                             max(int(self.ttl * 1000), 100)))
        except REDIS_ERRORS as exc:
            now = time.monotonic()
            since = self._unreachable_since = self._unreachable_since or now
            if not self.held and now - since >= self.ttl:
                log.warning("Redis unreachable for %.0f s (%s): polling Telegram anyway",
                            now - since, exc)
                return True
            log.warning("Redis unreachable for the polling lease (%s): keeping it as it was", exc)
            return self.held
        self._unreachable_since = None
        if got != self.held:
            log.info("Telegram polling lease %s", "taken" if got else "lost")
        self.held = bool(got)
        return self.held

    async def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            await self.client.eval(_GIVE_BACK, 1, self.key, self.token)
        except REDIS_ERRORS as exc:
            log.info("polling lease not given back (it lapses by itself): %s", exc)


class AdvisoryLease:
    """The lease as a session advisory lock on a connection of its own ``engine``."""

    def __init__(self, engine: Engine, *, ttl: float = 15.0, name: str = KEY,
                 own_engine: bool = False) -> None:
        self.engine = engine
        self.own_engine = own_engine  # dispose of it on release
        self.ttl = ttl
        self.name = name
        self._conn: Connection | None = None

    def _acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:  # the connection died, and the lock with it
                log.warning("polling lease connection lost: %s", exc)
                self._drop()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))"),
                               {"ns": NAMESPACE, "name": self.name}).scalar()
        except Exception:
            conn.invalidate()
            conn.close()
            raise
        if got:
            self._conn = conn
            log.info("Telegram polling lease taken")
            return True
        conn.close()
        return False

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()  # never back to the pool with the lock held
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    async def acquire(self) -> bool:
        try:
            return await asyncio.to_thread(self._acquire)
        except Exception as exc:
            log.warning("cannot reach the database for the polling lease: %s", exc)
            return self._conn is not None

    async def release(self) -> None:
        await asyncio.to_thread(self._drop)
        if self.own_engine:
            self.engine.dispose()


def for_deployment(*, redis: Any, database_url: str, ttl: float) -> PollingLease:
    if redis is not None:
        return RedisLease(redis, ttl=ttl)
    if database_url.startswith("postgresql"):
        from ticketing.core.db import make_engine

        return AdvisoryLease(make_engine(database_url, pool_size=1, max_overflow=1), ttl=ttl,
                             own_engine=True)
    return SoleLease(ttl)
