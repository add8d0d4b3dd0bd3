"""Shared buckets in a real Redis: one budget across limiter instances, expiry, and the
fall-back to local buckets while Redis is down (a private redis-server, killed mid-test)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from services.edge.rate_limits import Budget, RateLimiter, RateLimitMetrics
from services.edge.rate_limits_redis import RedisBuckets
from services.framework import ConfigError
from tests.edge.redis_server import private_redis, shared_redis_url, unique_prefix


def _budget(burst: int = 5, per_s: float = 3600.0) -> Budget:
    return Budget(name="test", key="client", rate=1, per_s=per_s, burst=burst)


def _limiter(url: str, prefix: str, metrics: RateLimitMetrics) -> RateLimiter:
    store = RedisBuckets(url, prefix=prefix, timeout_s=0.5, metrics=metrics)
    return RateLimiter({"test": _budget()}, store, metrics)


async def test_two_limiters_spend_one_budget_through_redis() -> None:
    url, prefix = shared_redis_url(), unique_prefix()
    metrics = RateLimitMetrics(CollectorRegistry())
    first, second = _limiter(url, prefix, metrics), _limiter(url, prefix, metrics)
    budget = _budget(burst=5)
    try:
        taken = [await first.take(budget, "c") for _ in range(3)]
        taken += [await second.take(budget, "c") for _ in range(2)]
        assert [d.remaining for d in taken] == [4, 3, 2, 1, 0]
        refused = [await limiter.take(budget, "c") for limiter in (first, second)]
        assert [d.allowed for d in refused] == [False, False]
        assert 3590 < refused[0].retry_after_s <= 3600
        assert (await first.take(budget, "other")).allowed  # another caller, its own bucket
    finally:
        await first.close()
        await second.close()


async def test_concurrent_requests_cannot_spend_a_token_twice() -> None:
    url, prefix = shared_redis_url(), unique_prefix()
    metrics = RateLimitMetrics(CollectorRegistry())
    limiters = [_limiter(url, prefix, metrics) for _ in range(4)]
    budget = _budget(burst=10)
    try:
        decisions = await asyncio.gather(*(limiters[i % 4].take(budget, "c") for i in range(60)))
        assert sum(d.allowed for d in decisions) == 10
    finally:
        for limiter in limiters:
            await limiter.close()


async def test_a_bucket_key_expires_when_it_would_be_full() -> None:
    url, prefix = shared_redis_url(), unique_prefix()
    limiter = _limiter(url, prefix, RateLimitMetrics(CollectorRegistry()))
    budget = Budget(name="test", key="client", rate=1, per_s=2.0, burst=4)
    try:
        await limiter.take(budget, "c")
        await limiter.take(budget, "c")
        ttl_ms = redis.Redis.from_url(url).pttl(f"{prefix}test:c")
        assert 3000 < ttl_ms <= 4000  # two requests of 2 s each to refill
    finally:
        await limiter.close()


async def test_with_redis_down_the_limiter_falls_back_to_local_buckets(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = RateLimitMetrics(registry)
    budget = _budget(burst=3)
    with private_redis(tmp_path) as server:
        limiter = _limiter(server.url, unique_prefix(), metrics)
        try:
            assert (await limiter.take(budget, "c")).allowed
            assert registry.get_sample_value("paynow_edge_rate_limit_redis_up") == 1
            server.stop()
            local = [await limiter.take(budget, "c") for _ in range(4)]
            # Local buckets start full: still three through, then refused, never unlimited.
            assert [d.allowed for d in local] == [True, True, True, False]
            assert registry.get_sample_value("paynow_edge_rate_limit_redis_up") == 0
            fallbacks = registry.get_sample_value("paynow_edge_rate_limit_local_fallbacks_total")
            assert fallbacks == 4
            refused = registry.get_sample_value(
                "paynow_edge_rate_limited_total", {"rate_limit_class": "test"}
            )
            assert refused == 1
        finally:
            await limiter.close()


async def test_the_limiter_returns_to_redis_when_it_is_back(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = RateLimitMetrics(registry)
    budget = _budget(burst=50)
    with private_redis(tmp_path) as server:
        limiter = _limiter(server.url, unique_prefix(), metrics)
        try:
            server.stop()
            await limiter.take(budget, "c")
            assert registry.get_sample_value("paynow_edge_rate_limit_redis_up") == 0
            server.start()
            # The store retries after its back-off (1 s): wait for it, bounded.
            for _ in range(40):
                await asyncio.sleep(0.1)
                await limiter.take(budget, "c")
                if registry.get_sample_value("paynow_edge_rate_limit_redis_up") == 1:
                    break
            assert registry.get_sample_value("paynow_edge_rate_limit_redis_up") == 1
        finally:
            await limiter.close()


@pytest.mark.parametrize(
    "url", ["http://:hunter2hunter2@cache:6379/0", "redis://:hunter2hunter2@cache:port/0"]
)
def test_a_malformed_redis_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ConfigError, match="PAYNOW_EDGE_REDIS_URL") as raised:
        RedisBuckets(url)
    assert "hunter2hunter2" not in str(raised.value)
