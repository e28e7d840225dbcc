"""How often one API token may call the shop API: a token bucket per key.

Each key holds up to ``burst`` requests and regains ``per_second`` of them every second, so a
shop can send a quick burst of batches and then a steady stream. The buckets live in Redis when
the process has one (one limit across every desk process; the check is one atomic script), in
the process otherwise, and in the process too while Redis fails, so an outage never stops the
shop's feed.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kefu.shop.quota")

# KEYS[1] bucket; ARGV burst, per_second, now (seconds). Returns the seconds to wait ("0": go).
_TAKE = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


@dataclass(frozen=True)
class QuotaPolicy:
    burst: int = 20  # batches at once
    per_second: float = 2.0  # batches per second after that (2,000 rows/s at 1,000 a batch)


class TokenBucket:
    """``take(key, now)`` → 0 when the request may go, else the seconds until it may."""

    def __init__(self, policy: QuotaPolicy = QuotaPolicy(), *, redis: Any = None,
                 prefix: str = "kefu:shop_quota") -> None:
        self.policy, self.redis, self.prefix = policy, redis, prefix
        self._local: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, *, now: float) -> float:
        if self.redis is not None:
            try:
                wait = self.redis.eval(_TAKE, 1, f"{self.prefix}:{key}", self.policy.burst,
                                       self.policy.per_second, repr(now))
                return float(wait)
            except Exception as exc:  # Redis down or flushed mid-call: keep the feed going
                log.warning("shop quota falls back to this process: %s", exc)
        return self._take_local(key, now)

    def _take_local(self, key: str, now: float) -> float:
        burst, rate = float(self.policy.burst), self.policy.per_second
        with self._lock:
            tokens, at = self._local.get(key, (burst, now))
            if now > at:
                tokens, at = min(burst, tokens + (now - at) * rate), now
            if tokens >= 1:
                self._local[key] = (tokens - 1, at)
                return 0.0
            self._local[key] = (tokens, at)
            return (1 - tokens) / rate


def retry_after(wait: float) -> int:
    """Whole seconds for a ``Retry-After`` header: never 0 when the request was refused."""
    return max(1, math.ceil(wait))
