"""Listening for outbox wake-ups (``ticketing/conversations/wakeups.py``) from other processes.

The desk, the worker and other gateways publish a conversation id on Redis once they have
committed outbox rows for it; this listener hands it to :meth:`Delivery.wake`, so an agent's
reply reaches the customer in milliseconds rather than at the next poll. Pub/sub is fire and
forget: while Redis is away (or a message is missed) the poll delivers, a little later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.gateway.delivery import Delivery
from ticketing.conversations.wakeups import CHANNEL

log = logging.getLogger("kefu.gateway.wakeups")

try:  # redis is a dependency, but the single-machine set-up must import without a server
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover
    RedisError = OSError  # type: ignore[misc,assignment]


class WakeupListener:
    def __init__(self, redis: Any, delivery: Delivery, *, channel: str = CHANNEL,
                 retry_after: float = 2.0) -> None:
        self.redis = redis  # a redis.asyncio client
        self.delivery = delivery
        self.channel = channel
        self.retry_after = retry_after
        self.subscribed = asyncio.Event()  # for tests and health: listening right now

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self._listen(stopping)
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self.subscribed.clear()
                log.warning("outbox wake-ups unavailable (%s): polling only, retrying in %.0f s",
                            exc, self.retry_after)
                try:
                    await asyncio.wait_for(stopping.wait(), timeout=self.retry_after)
                except asyncio.TimeoutError:
                    pass

    async def _listen(self, stopping: asyncio.Event) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.subscribed.set()
            while not stopping.is_set():
                message = await pubsub.get_message(timeout=0.5)
                if message is None or message.get("type") != "message":
                    continue
                data = message["data"]
                conversation = data.decode() if isinstance(data, bytes) else str(data)
                if conversation:
                    self.delivery.wake(conversation)
        finally:
            self.subscribed.clear()
            try:
                await pubsub.aclose()
            except (RedisError, OSError):
                pass
