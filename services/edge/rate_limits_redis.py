"""Rate-limit buckets shared by edge replicas through Redis (PAYNOW_EDGE_REDIS_URL).

Each bucket is one Redis key holding its TAT in microseconds of Redis's own clock (TIME), so
replicas with drifting clocks still agree; one Lua script reads, decides and moves it, so
concurrent requests on several replicas cannot spend the same token twice. The key expires
when the bucket would be full, so Redis holds only callers seen within their refill time.

When Redis cannot answer (refused, timed out, failing), `take` returns None and the limiter
decides in this process instead; the store then leaves Redis alone for a back-off period
(doubling from 1 s to 30 s) rather than making every request wait for a timeout. The switch
both ways is logged once and shown by `paynow_edge_rate_limit_redis_up`.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio
import redis.exceptions
import structlog

from services.framework import ConfigError

from .rate_limits import Budget, Decision, RateLimitMetrics

__all__ = ["RedisBuckets"]

_log = structlog.get_logger("edge")
# KEYS[1]: the bucket; ARGV: interval and tolerance in µs. Returns {allowed, reset µs,
# retry µs, remaining}. Mirrors rate_limits.decide() in integer microseconds.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local moved = tat + interval
local ahead = moved - now
if ahead > tolerance then
  return {0, tat - now, moved - tolerance - now, 0}
end
redis.call('SET', KEYS[1], moved, 'PX', math.ceil(ahead / 1000))
return {1, ahead, 0, math.floor((tolerance - ahead) / interval)}
"""
_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 30.0


class RedisBuckets:
    """Buckets in Redis at `url`, under keys `<prefix><class>:<caller>`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "paynow:ratelimit:",
        timeout_s: float = 0.1,
        metrics: RateLimitMetrics | None = None,
    ) -> None:
        try:
            self._client: Any = redis.asyncio.Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry_on_timeout=False,
            )
        except ValueError as exc:
            # redis-py's messages name the part that is wrong, never the URL (a secret).
            raise ConfigError(f"PAYNOW_EDGE_REDIS_URL: {exc}") from None
        self._script = self._client.register_script(_GCRA)
        self._prefix = prefix
        self._metrics = metrics or RateLimitMetrics.of()
        self._metrics.redis_up.set(1)
        self._healthy = True
        self._retry_at = 0.0
        self._backoff_s = _FIRST_BACKOFF_S

    async def take(self, budget: Budget, key: str) -> Decision | None:
        """The shared decision, or None when Redis cannot give one now."""
        if not self._healthy and time.monotonic() < self._retry_at:
            self._metrics.fallbacks.inc()
            return None
        try:
            allowed, reset_us, retry_us, remaining = await self._script(
                keys=[f"{self._prefix}{budget.name}:{key}"],
                args=[round(budget.interval * 1e6), round(budget.tolerance * 1e6)],
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            self._failed(exc)
            self._metrics.fallbacks.inc()
            return None
        if not self._healthy:
            self._healthy = True
            self._backoff_s = _FIRST_BACKOFF_S
            self._metrics.redis_up.set(1)
            _log.info("rate_limit_redis_recovered", effect="budgets are shared again")
        return Decision(bool(allowed), budget.burst, int(remaining), reset_us / 1e6, retry_us / 1e6)

    def _failed(self, exc: BaseException) -> None:
        if self._healthy:
            self._healthy = False
            self._metrics.redis_up.set(0)
            # The URL may carry a password: name the error's type and text only.
            _log.warning(
                "rate_limit_redis_unavailable",
                error=type(exc).__name__,
                effect="rate limits are enforced per edge process until Redis answers",
            )
        else:
            self._backoff_s = min(self._backoff_s * 2, _MAX_BACKOFF_S)
        self._retry_at = time.monotonic() + self._backoff_s

    async def close(self) -> None:
        await self._client.aclose()
