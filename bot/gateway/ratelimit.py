"""Per-conversation rate limit (rules §SEC-7: frequent requests are abnormal behaviour).

Counts live in Redis when configured, so several gateways share them; when Redis is missing
or fails, an in-process window takes over and the gateway keeps serving.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

log = logging.getLogger("kefu.gateway.ratelimit")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    first_refusal: bool  # the first message over the limit in this window: record the abuse


class RateLimiter:
    def __init__(self, *, limit: int, window: float, redis=None, prefix: str = "kefu:rate") -> None:
        self.limit, self.window, self.redis, self.prefix = limit, window, redis, prefix
        self._local: dict[str, deque[float]] = {}

    async def check(self, key: str) -> Verdict:
        if self.limit <= 0:
            return Verdict(True, 0, False)
        if self.redis is not None:
            try:
                return await self._check_redis(key)
            except Exception as exc:  # Redis down or flushed mid-call: keep serving
                log.warning("rate limit falls back to memory: %s", exc)
        return self._check_local(key)

    async def _check_redis(self, key: str) -> Verdict:
        bucket = int(time.time() // self.window)
        name = f"{self.prefix}:{key}:{bucket}"
        pipe = self.redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, int(self.window) + 5)
        count, _ = await pipe.execute()
        return Verdict(count <= self.limit, count, count == self.limit + 1)

    def _check_local(self, key: str) -> Verdict:
        now = time.monotonic()
        stamps = self._local.setdefault(key, deque())
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        stamps.append(now)
        count = len(stamps)
        if len(self._local) > 50_000:  # forget idle conversations
            for idle in [k for k, v in self._local.items() if not v or v[-1] <= now - self.window]:
                del self._local[idle]
        return Verdict(count <= self.limit, count, count == self.limit + 1)
