"""Rate limits at the edge: one token bucket per caller and route class.

A route's class is its RPC's `(paynow.api.v1.access).rate_limit_class`; when that is empty,
the class named after the access level that let the caller in (`public`, `user` or
`merchant`). What each class allows lives in one TOML file (rate_limits.toml beside this
module, or PAYNOW_EDGE_RATE_LIMITS_FILE): adding a class is an annotation and a table, never
code. A request whose credentials fail also spends a token of `credential-failures` by
client address, so guessing API keys or tokens is throttled like signing in.

Buckets follow GCRA (the generic cell rate algorithm), which is a token bucket kept as one
number per caller: the "theoretical arrival time" (TAT) at which the bucket would be full
again. A request is let through when the TAT it would move to lies at most `burst` intervals
ahead of now. One number makes the shared store cheap: Redis holds it under one key, and one
Lua script reads and moves it atomically (RedisBuckets). Without Redis, or while Redis is
unreachable, each edge process keeps its own buckets (LocalBuckets), so N replicas allow up
to N times a budget until Redis is back; the edge logs and counts every switch.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from prometheus_client import Counter, Gauge
from prometheus_client.registry import CollectorRegistry

from services.framework import ConfigError

from .auth import Identity
from .errors import EdgeError
from .telemetry import PerRegistry

__all__ = [
    "CREDENTIAL_FAILURES",
    "DEFAULT_RATE_LIMITS_FILE",
    "Budget",
    "Decision",
    "LocalBuckets",
    "RateLimiter",
    "caller_key",
    "load_budgets",
    "rate_limited",
    "write_unreachable_budgets",
]

DEFAULT_RATE_LIMITS_FILE = Path(__file__).with_name("rate_limits.toml")
# The class every failed authentication spends, keyed by client address.
CREDENTIAL_FAILURES = "credential-failures"
_KEYS = frozenset({"client", "caller"})


class RateLimitMetrics(PerRegistry):
    """Refusals by class, and whether buckets are shared through Redis right now."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter(
            "paynow_edge_rate_limited",
            "Requests the edge refused with 429, by rate-limit class.",
            ["rate_limit_class"],
            registry=registry,
        )
        self.redis_up = Gauge(
            "paynow_edge_rate_limit_redis_up",
            "1 while rate-limit buckets are shared through Redis, 0 while this edge falls "
            "back to its own buckets (absent without PAYNOW_EDGE_REDIS_URL).",
            registry=registry,
        )
        self.fallbacks = Counter(
            "paynow_edge_rate_limit_local_fallbacks",
            "Rate-limit decisions taken in this process because Redis could not answer.",
            registry=registry,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    """One class: `burst` requests at once, refilled at `rate` per `per_s` seconds, counted
    per client address (`key = "client"`) or per verified caller (`"caller"`: the user or
    API key, the client address when the request carries neither)."""

    name: str
    key: str
    rate: int
    per_s: float
    burst: int
    # Derived: seconds one request costs, and how far ahead of now the TAT may run.
    interval: float = dataclasses.field(init=False)
    tolerance: float = dataclasses.field(init=False)
    policy_header: bytes = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        interval = self.per_s / self.rate
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "tolerance", interval * self.burst)
        # draft-ietf-httpapi-ratelimit-headers-06: quota units per window, here the bucket
        # size over the time an empty bucket takes to fill.
        window = max(1, math.ceil(interval * self.burst))
        object.__setattr__(self, "policy_header", b"%d;w=%d" % (self.burst, window))


class Decision(NamedTuple):
    """A bucket's answer: whether the request passes, what is left, and when to come back.

    A NamedTuple, not a frozen dataclass: one is made per request, and a frozen dataclass's
    __init__ sets each field through object.__setattr__ (about 1 µs against 0.2)."""

    allowed: bool
    limit: int
    remaining: int
    # Seconds until the bucket is full again (RateLimit-Reset).
    reset_s: float
    # Seconds until one request would pass (Retry-After); 0 when allowed.
    retry_after_s: float = 0.0

    def headers(self, budget: Budget) -> bytes:
        """The RateLimit-* header lines (CRLF-terminated) describing this decision."""
        # One format, not header_pairs() joined: this runs on every limited request.
        return (
            b"ratelimit-limit: %d\r\nratelimit-remaining: %d\r\nratelimit-reset: %d\r\n"
            b"ratelimit-policy: %s\r\n"
            % (self.limit, self.remaining, math.ceil(self.reset_s), budget.policy_header)
        )

    def header_pairs(self, budget: Budget) -> list[tuple[bytes, bytes]]:
        """RateLimit-Limit, -Remaining, -Reset (seconds until the bucket is full again) and
        -Policy, as draft-ietf-httpapi-ratelimit-headers-06 names them."""
        return [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % math.ceil(self.reset_s)),
            (b"ratelimit-policy", budget.policy_header),
        ]


def decide(budget: Budget, tat: float, now: float) -> tuple[Decision, float]:
    """GCRA for one request at `now` against a bucket whose TAT is `tat` (≤ now: full).
    Returns the decision and the TAT to store (unchanged when refused)."""
    tat = max(tat, now)
    moved = tat + budget.interval
    ahead = moved - now
    # A few nanoseconds of slack: float sums of intervals must not refuse the last token.
    if ahead > budget.tolerance + 1e-9:
        retry = moved - budget.tolerance - now
        return Decision(False, budget.burst, 0, tat - now, max(retry, 0.0)), tat
    remaining = int((budget.tolerance - ahead) / budget.interval + 1e-9)
    return Decision(True, budget.burst, remaining, ahead), moved


class LocalBuckets:
    """Buckets in this process's memory, swept of full ones as the map grows.

    A caller whose bucket is full again needs no entry, so the map holds only callers seen
    within their refill time; past `max_entries` the oldest entries are dropped, which only
    ever gives those callers a full bucket (more lenient, never stricter).
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._tat: dict[tuple[str, str], float] = {}
        self._clock = clock
        self._max_entries = max_entries
        self._sweep_at = 1024

    def __len__(self) -> int:
        return len(self._tat)

    def take(self, budget: Budget, key: str) -> Decision:
        now = self._clock()
        slot = (budget.name, key)
        decision, tat = decide(budget, self._tat.get(slot, now), now)
        if decision.allowed:
            self._tat[slot] = tat
            if len(self._tat) >= self._sweep_at:
                self._sweep(now)
        return decision

    def _sweep(self, now: float) -> None:
        self._tat = {slot: tat for slot, tat in self._tat.items() if tat > now}
        excess = len(self._tat) - self._max_entries
        if excess > 0:
            for slot in list(self._tat)[:excess]:
                del self._tat[slot]
        self._sweep_at = max(1024, 2 * len(self._tat))


def _number(table: Mapping[str, Any], name: str, where: str, kind: type) -> Any:
    value = table.get(name)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float) if kind is float else int)
        or not value > 0
    ):
        raise ConfigError(f"{where}: `{name}` must be a positive {kind.__name__}, got {value!r}")
    return value


def load_budgets(path: Path) -> dict[str, Budget]:
    """Every class of the TOML file at `path`. Raises ConfigError naming the file and the
    entry that is missing or malformed."""
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"rate limits file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"rate limits file {path}: {exc}") from None
    classes = document.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise ConfigError(f"rate limits file {path}: expected [classes.<name>] tables")
    budgets: dict[str, Budget] = {}
    for name, table in classes.items():
        where = f"{path} [classes.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table")
        unknown = set(table) - {"key", "rate", "per_s", "burst"}
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
        key = table.get("key")
        if key not in _KEYS:
            raise ConfigError(f'{where}: `key` must be "client" or "caller", got {key!r}')
        budgets[name] = Budget(
            name=name,
            key=key,
            rate=_number(table, "rate", where, int),
            per_s=float(_number(table, "per_s", where, float)),
            burst=_number(table, "burst", where, int),
        )
    return budgets


def write_unreachable_budgets(path: Path, source: Path = DEFAULT_RATE_LIMITS_FILE) -> Path:
    """Write to `path` the classes of `source` with budgets no load test can spend (a million
    requests a second), so benchmarks measure the limiter's cost without its refusals."""
    tables = [
        f'[classes.{name}]\nkey = "{budget.key}"\nrate = 1000000\nper_s = 1\nburst = 1000000\n'
        for name, budget in load_budgets(source).items()
    ]
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def client_key(address: str) -> str:
    """The bucket key of a client address; IPv6 clients count per /64, the block one
    subscriber usually holds, so cycling addresses within it gains nothing."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address) + "/64"
    except ValueError:
        return address


def caller_key(user_id: str | None, api_key: str | None, client: str) -> str:
    """The bucket key of a verified caller: the user, else the API key, else the client."""
    if user_id:
        return "user:" + user_id
    if api_key:
        return "key:" + api_key
    return client_key(client)


def rate_limited(budget: Budget, decision: Decision) -> EdgeError:
    """The 429 for a refused request: Retry-After, RateLimit-* and a Status with RetryInfo."""
    retry_s = max(1, math.ceil(decision.retry_after_s))
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(math.ceil(decision.retry_after_s * 1e9))
    headers = [("Retry-After", str(retry_s))]
    headers += [(k.decode(), v.decode()) for k, v in decision.header_pairs(budget)]
    return EdgeError(
        429,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        f"too many requests of class {budget.name!r}; retry in {retry_s} s",
        metadata={"rateLimitClass": budget.name, "limit": str(budget.burst)},
        headers=headers,
        details=[error_details_pb2.RetryInfo(retry_delay=delay)],
    )


class RateLimiter:
    """Budgets by class name, and the store their buckets live in."""

    def __init__(
        self,
        budgets: Mapping[str, Budget],
        store: Any = None,
        metrics: RateLimitMetrics | None = None,
    ) -> None:
        self._budgets = dict(budgets)
        self._metrics = metrics or RateLimitMetrics.of()
        self._local = LocalBuckets()
        # RedisBuckets when replicas share budgets; None keeps every bucket in this process.
        self._store = store
        # Client address → when its credential-failure budget lets it try again (monotonic);
        # checked before authenticating so a blocked guesser costs no verification.
        self._blocked: dict[str, float] = {}

    def budget(self, name: str) -> Budget:
        """The class `name`; KeyError when the file lacks it (checked at start-up)."""
        return self._budgets[name]

    def require(self, names: Mapping[str, str]) -> None:
        """Fail start-up with ConfigError when a route's class is not in the file;
        `names` maps each class to a method that uses it."""
        for name, method in names.items():
            if name not in self._budgets:
                raise ConfigError(
                    f"{method} uses rate-limit class {name!r}, which the rate limits file "
                    f"does not define (classes: {', '.join(sorted(self._budgets))})"
                )

    def bucket(self, class_name: str, identity: Identity | None, client: str) -> tuple[Budget, str]:
        """The budget and bucket key of a request: `class_name`, or when empty the class of
        the identity's kind (`user`, `merchant`; `public` without one)."""
        if not class_name:
            if identity is None:
                class_name = "public"
            else:
                class_name = "user" if identity.user_id else "merchant"
        budget = self._budgets[class_name]
        if budget.key == "client" or identity is None:
            return budget, client_key(client)
        return budget, caller_key(identity.user_id, identity.api_key, client)

    async def take(self, budget: Budget, key: str) -> Decision:
        """Spend one token of `key`'s bucket in `budget`."""
        if self._store is None:
            decision = self._local.take(budget, key)
        else:
            shared: Decision | None = await self._store.take(budget, key)
            decision = shared if shared is not None else self._local.take(budget, key)
        if not decision.allowed:
            self._metrics.refused.labels(budget.name).inc()
        return decision

    def blocked_for(self, client: str) -> float:
        """Seconds this client must still wait after spending its credential failures."""
        if not self._blocked:
            return 0.0
        key = client_key(client)
        until = self._blocked.get(key)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[key]
            return 0.0
        return left

    async def failed_credentials(self, client: str) -> Decision | None:
        """Count a failed authentication; the refusing Decision once the client's failures
        exceed the class, None while they are within it (or the class is not configured)."""
        budget = self._budgets.get(CREDENTIAL_FAILURES)
        if budget is None:
            return None
        key = client_key(client)
        decision = await self.take(budget, key)
        if decision.allowed:
            return None
        if len(self._blocked) > 100_000:
            self._blocked.clear()  # bounded: forgetting only makes the next check ask again
        self._blocked[key] = time.monotonic() + decision.retry_after_s
        return decision

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
