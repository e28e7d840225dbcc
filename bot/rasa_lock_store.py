"""One conversation's turns one at a time across Rasa servers: a Redis lock, two commands a turn.

Runs inside ``.venv-rasa`` (endpoints: ``type: bot.rasa_lock_store.RedisMutexLockStore``,
written by ``bot/rasa_config.py`` whenever Rasa has Redis). Rasa 3.6's ``RedisLockStore``
keeps a ticket queue per conversation as a JSON document that every step reads, changes and
writes back with the synchronous redis client (about 7 commands a turn, the event loop
blocked through each, and two servers can read the same document and hand out the same
ticket), then polls once a second while it waits. Here the lock is ``SET key token NX PX``
(atomic, so two servers never both hold it), released by a compare-and-delete script (a lapsed
lock is never freed for someone else's turn), and a waiter polls every few milliseconds,
backing off to 50 ms. Commands are retried on a new connection after a Redis restart (a
release lost to a closed connection would hold the conversation's next turns for the lock's
lifetime, a minute). The gateway's own per-conversation lock already keeps a conversation's
messages in order; this one guards Rasa's tracker against anything else that reaches Rasa for
the same conversation (a desk's resume, a triggered intent, a second gateway after a lapse).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from typing import Any

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore
from rasa.utils.endpoints import EndpointConfig
from redis import asyncio as aioredis

log = logging.getLogger("kefu.rasa.lock_store")

# SET NX, or ours already: a retried SET whose first answer was lost must not wait for itself
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
FIRST_WAIT, LAST_WAIT = 0.002, 0.05  # seconds between tries while another turn holds it
RETRIES = 8  # a command refused by a restarting Redis: tried again after 0.1, 0.2, 0.4, 0.5 s...
RETRY_SECONDS = 3


def client(*, host: str, port: int, db: int, username: str | None, password: str | None,
           use_ssl: bool) -> aioredis.Redis:
    """An asyncio Redis client that outlives a Redis restart: a command on a connection the
    restart closed, or refused while Redis starts again, is sent again on a new one for about
    :data:`RETRY_SECONDS` (redis-py 4.6, which Rasa pins, does not retry by itself), so a
    second's restart costs a turn that long instead of an apology and a ticket. Every command
    sent through it is safe to repeat (reads, the count-checked append, the token-checked lock).

    ``OSError`` is in the list for the refusal: redis-py retries a connection attempt only on
    its own exception types, and a refused connect raises the builtin ``ConnectionRefusedError``
    (then wrapped, outside the retry), so a turn that began while Redis was down failed at once
    with a 500 and the customer got an apology and a ticket (the fault suite's Redis restart)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    return aioredis.Redis(host=host, port=port, db=db, username=username, password=password,
                          ssl=use_ssl, decode_responses=True, socket_connect_timeout=2,
                          socket_timeout=10,
                          retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
                          retry_on_error=[ConnectionError, TimeoutError, OSError])


class RedisMutexLockStore(LockStore):
    """``lock(conversation_id)`` as one Redis key per conversation held by one turn."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, *,
                 redis: aioredis.Redis | None = None, key_prefix: str = "lock") -> None:
        config: dict[str, Any] = dict(endpoint_config.kwargs) if endpoint_config else {}
        if redis is None:
            redis = client(host=endpoint_config.url if endpoint_config and endpoint_config.url
                           else "localhost",
                           port=int(config.get("port", 6379)), db=int(config.get("db", 0)),
                           username=config.get("username"), password=config.get("password"),
                           use_ssl=bool(config.get("use_ssl", False)))
        self.red = redis
        self.key_prefix = str(config.get("key_prefix") or key_prefix)
        self._acquire = self.red.register_script(ACQUIRE)
        self._release = self.red.register_script(RELEASE)
        super().__init__()

    def _key(self, conversation_id: str) -> str:
        return f"{self.key_prefix}:{conversation_id}"

    @contextlib.asynccontextmanager
    async def lock(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: float = 1) -> AsyncGenerator[TicketLock, None]:
        """Hold the conversation's lock for the block; wait up to ``lock_lifetime`` for it.

        ``wait_time_in_seconds`` (Rasa's poll interval) is the longest pause between tries.
        """
        key, token = self._key(conversation_id), secrets.token_hex(8)
        lifetime_ms = max(1, int(lock_lifetime * 1000))
        deadline = time.monotonic() + lock_lifetime
        pause = FIRST_WAIT
        while not await self._acquire(keys=[key], args=[token, lifetime_ms]):
            if time.monotonic() >= deadline:
                raise LockError(f"could not get the lock of {conversation_id} in "
                                f"{lock_lifetime:.0f} s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_WAIT, wait_time_in_seconds)
        try:
            yield TicketLock(conversation_id)
        finally:
            try:
                await self._release(keys=[key], args=[token])
            except Exception as exc:  # the lock lapses after its lifetime
                log.warning("could not release the lock of %s (%s)", conversation_id,
                            type(exc).__name__)

    # Rasa's ticket-queue interface, unused with a mutex: kept so nothing half-works silently
    def get_lock(self, conversation_id: str) -> TicketLock | None:
        raise NotImplementedError("RedisMutexLockStore holds no ticket queues")

    def delete_lock(self, conversation_id: str) -> None:
        raise NotImplementedError("RedisMutexLockStore holds no ticket queues")

    def save_lock(self, lock: TicketLock) -> None:
        raise NotImplementedError("RedisMutexLockStore holds no ticket queues")
