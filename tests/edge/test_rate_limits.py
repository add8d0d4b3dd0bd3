"""Rate limits in one process: GCRA buckets, the budgets file, keys, and the 429 itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.edge.auth import INTERNAL, Identity
from services.edge.config import DEFAULT_DESCRIPTOR_SET
from services.edge.descriptors import load_descriptor_set
from services.edge.rate_limits import (
    CREDENTIAL_FAILURES,
    DEFAULT_RATE_LIMITS_FILE,
    Budget,
    LocalBuckets,
    RateLimiter,
    client_key,
    load_budgets,
    rate_limited,
)
from services.framework import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _budget(rate: int = 1, per_s: float = 1.0, burst: int = 3, key: str = "client") -> Budget:
    return Budget(name="test", key=key, rate=rate, per_s=per_s, burst=burst)


def test_a_full_bucket_lets_burst_requests_through_then_refuses() -> None:
    buckets = LocalBuckets(clock=Clock())
    budget = _budget(burst=3)
    decisions = [buckets.take(budget, "a") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after_s == pytest.approx(1.0)


def test_tokens_come_back_at_the_rate() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock=clock)
    budget = _budget(rate=2, per_s=1.0, burst=2)  # one token every 0.5 s
    assert all(buckets.take(budget, "a").allowed for _ in range(2))
    refused = buckets.take(budget, "a")
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)
    clock.now += 0.49
    assert not buckets.take(budget, "a").allowed
    clock.now += 0.01
    assert buckets.take(budget, "a").allowed
    assert not buckets.take(budget, "a").allowed
    clock.now += 10  # a long pause refills to the burst, never beyond it
    assert [buckets.take(budget, "a").allowed for _ in range(3)] == [True, True, False]


def test_refused_requests_do_not_spend_tokens() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock=clock)
    budget = _budget(rate=1, per_s=1.0, burst=1)
    assert buckets.take(budget, "a").allowed
    for _ in range(100):  # a client hammering while refused does not dig a deeper hole
        assert not buckets.take(budget, "a").allowed
    clock.now += 1.0
    assert buckets.take(budget, "a").allowed


def test_callers_and_classes_have_separate_buckets() -> None:
    buckets = LocalBuckets(clock=Clock())
    one, other = _budget(burst=1), Budget(name="other", key="client", rate=1, per_s=1, burst=1)
    assert buckets.take(one, "a").allowed
    assert not buckets.take(one, "a").allowed
    assert buckets.take(one, "b").allowed
    assert buckets.take(other, "a").allowed


def test_reset_says_when_the_bucket_is_full_again() -> None:
    buckets = LocalBuckets(clock=Clock())
    budget = _budget(rate=1, per_s=10.0, burst=5)
    first = buckets.take(budget, "a")
    assert first.reset_s == pytest.approx(10.0)
    second = buckets.take(budget, "a")
    assert second.reset_s == pytest.approx(20.0)
    header = second.headers(budget).decode()
    assert header == (
        "ratelimit-limit: 5\r\nratelimit-remaining: 3\r\nratelimit-reset: 20\r\n"
        "ratelimit-policy: 5;w=50\r\n"
    )
    # The 429's header pairs say the same as the lines every limited response carries.
    pairs = b"".join(b"%s: %s\r\n" % pair for pair in second.header_pairs(budget))
    assert pairs.decode() == header


def test_the_map_drops_callers_whose_buckets_are_full_again() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock=clock, max_entries=2000)
    budget = _budget(rate=1, per_s=1.0, burst=5)
    for caller in range(1500):
        buckets.take(budget, f"c{caller}")
    clock.now += 2.0  # every bucket is full again: nothing needs remembering
    buckets.take(budget, "late")
    for caller in range(600):
        buckets.take(budget, f"d{caller}")
    assert len(buckets) <= 1024


def test_the_map_stays_bounded_under_a_flood_of_callers() -> None:
    buckets = LocalBuckets(clock=Clock(), max_entries=1500)
    budget = _budget(rate=1, per_s=3600.0, burst=5)  # nobody's bucket refills in the test
    for caller in range(20_000):
        buckets.take(budget, f"c{caller}")
    assert len(buckets) <= 3000  # max_entries, plus what arrives before the next sweep


def test_ipv6_clients_share_a_bucket_per_64_block() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::7")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("192.0.2.7") == "192.0.2.7"


def test_the_class_comes_from_the_route_or_the_callers_kind() -> None:
    budgets = {
        name: Budget(name=name, key=key, rate=1, per_s=1, burst=1)
        for name, key in [
            ("public", "client"),
            ("user", "caller"),
            ("merchant", "caller"),
            ("auth-strict", "client"),
        ]
    }
    limiter = RateLimiter(budgets)
    person, shop = Identity(user_id="acc_1"), Identity(merchant_id="mer_1", api_key="k1")
    assert limiter.bucket("", None, "192.0.2.1") == (budgets["public"], "192.0.2.1")
    assert limiter.bucket("", person, "192.0.2.1") == (budgets["user"], "user:acc_1")
    assert limiter.bucket("", shop, "192.0.2.1") == (budgets["merchant"], "key:k1")
    # A class keyed by client counts the address even for a verified caller.
    assert limiter.bucket("auth-strict", person, "192.0.2.1") == (
        budgets["auth-strict"],
        "192.0.2.1",
    )


async def test_spent_credential_failures_block_the_client() -> None:
    budgets = {
        CREDENTIAL_FAILURES: Budget(
            name=CREDENTIAL_FAILURES, key="client", rate=1, per_s=60, burst=2
        )
    }
    limiter = RateLimiter(budgets)
    assert await limiter.failed_credentials("192.0.2.9") is None
    assert await limiter.failed_credentials("192.0.2.9") is None
    assert limiter.blocked_for("192.0.2.9") == 0
    refused = await limiter.failed_credentials("192.0.2.9")
    assert refused is not None
    assert not refused.allowed
    assert 59 < limiter.blocked_for("192.0.2.9") <= 60  # one failure back per minute
    assert limiter.blocked_for("192.0.2.10") == 0


async def test_without_a_failure_class_failures_are_not_counted() -> None:
    limiter = RateLimiter({})
    for _ in range(50):
        assert await limiter.failed_credentials("192.0.2.9") is None


def test_the_429_carries_retry_after_ratelimit_headers_and_retry_info() -> None:
    budget = _budget(rate=1, per_s=2.0, burst=1)
    buckets = LocalBuckets(clock=Clock())
    buckets.take(budget, "a")
    error = rate_limited(budget, buckets.take(budget, "a"))
    assert error.status == 429
    headers = dict(error.headers)
    assert headers["Retry-After"] == "2"
    assert headers["ratelimit-remaining"] == "0"
    assert headers["ratelimit-limit"] == "1"
    body = json.loads(error.body())
    assert body["code"] == 8
    info, retry = body["details"]
    assert info["reason"] == "RATE_LIMITED"
    assert info["metadata"] == {"rateLimitClass": "test", "limit": "1"}
    assert retry == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}


def test_retry_after_is_never_zero() -> None:
    budget = _budget(rate=1000, per_s=1.0, burst=1)
    buckets = LocalBuckets(clock=Clock())
    buckets.take(budget, "a")
    error = rate_limited(budget, buckets.take(budget, "a"))
    assert dict(error.headers)["Retry-After"] == "1"  # 1 ms rounds up: never "retry now"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "expected [classes.<name>] tables"),
        ("[classes.a]\nrate = 1\nper_s = 1\nburst = 1\n", '`key` must be "client" or "caller"'),
        ('[classes.a]\nkey = "client"\nrate = 0\nper_s = 1\nburst = 1\n', "`rate` must be"),
        ('[classes.a]\nkey = "client"\nrate = 1\nper_s = -1\nburst = 1\n', "`per_s` must be"),
        ('[classes.a]\nkey = "client"\nrate = 1\nper_s = 1\nburst = 1.5\n', "`burst` must be"),
        ('[classes.a]\nkey = "client"\nrate = 1\nper_s = 1\nburst = 1\nrps = 3\n', "rps"),
        ("[classes.a\n", "limits.toml"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_entry(
    tmp_path: Path, text: str, complaint: str
) -> None:
    with pytest.raises(ConfigError, match=r"limits\.toml") as raised:
        load_budgets(_write(tmp_path, text))
    assert complaint in str(raised.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no-such\.toml"):
        load_budgets(tmp_path / "no-such.toml")


def test_a_route_class_missing_from_the_file_stops_start_up() -> None:
    limiter = RateLimiter({"public": _budget()})
    with pytest.raises(ConfigError, match=r"/a.B/Login uses rate-limit class 'auth-strict'"):
        limiter.require({"auth-strict": "/a.B/Login"})


def test_the_default_file_defines_every_class_paynow_routes_use() -> None:
    budgets = load_budgets(DEFAULT_RATE_LIMITS_FILE)
    _, methods = load_descriptor_set(DEFAULT_DESCRIPTOR_SET, INTERNAL)
    named = {m.rate_limit_class for m in methods if m.rate_limit_class}
    assert named == {"auth-strict"}  # sign-up and sign-in, from the protos
    assert {"public", "user", "merchant", CREDENTIAL_FAILURES, *named} <= set(budgets)
    strict = budgets["auth-strict"]
    assert strict.rate / strict.per_s < budgets["public"].rate / budgets["public"].per_s
    logins = {m.name for m in methods if m.rate_limit_class == "auth-strict"}
    assert logins == {"Register", "Login"}
