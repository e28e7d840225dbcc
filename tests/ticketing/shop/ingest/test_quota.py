"""The per-token quota: a burst, then a steady rate; shared through Redis, and still working
in the process when Redis fails."""

from __future__ import annotations

import pytest

from ticketing.shop.ingest.quota import QuotaPolicy, TokenBucket, retry_after


def _drain(bucket: TokenBucket, key: str, now: float) -> list[float]:
    return [bucket.take(key, now=now) for _ in range(4)]


def test_burst_then_refill_in_the_process() -> None:
    bucket = TokenBucket(QuotaPolicy(burst=3, per_second=0.5))
    assert _drain(bucket, "a", 100.0) == [0.0, 0.0, 0.0, pytest.approx(2.0)]
    assert bucket.take("b", now=100.0) == 0.0  # each key has its own bucket
    assert bucket.take("a", now=101.0) == pytest.approx(1.0)  # half a request regained
    assert bucket.take("a", now=102.0) == 0.0
    assert retry_after(0.2) == 1 and retry_after(2.01) == 3


class _BrokenRedis:
    def eval(self, *args: object) -> object:
        raise ConnectionError("redis is gone")


def test_a_failing_redis_falls_back_to_the_process() -> None:
    bucket = TokenBucket(QuotaPolicy(burst=1, per_second=1.0), redis=_BrokenRedis())
    assert bucket.take("a", now=5.0) == 0.0
    assert bucket.take("a", now=5.0) == pytest.approx(1.0)


@pytest.mark.redis
def test_redis_shares_one_bucket_between_processes(redis_client) -> None:
    policy = QuotaPolicy(burst=2, per_second=1.0)
    one, other = TokenBucket(policy, redis=redis_client), TokenBucket(policy, redis=redis_client)
    assert one.take("t", now=50.0) == 0.0
    assert other.take("t", now=50.0) == 0.0
    assert one.take("t", now=50.0) == pytest.approx(1.0)
    assert other.take("t", now=50.5) == pytest.approx(0.5)
    assert one.take("t", now=51.0) == 0.0
    assert 0 < redis_client.ttl("kefu:shop_quota:t") <= 62
