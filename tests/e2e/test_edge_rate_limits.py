"""Rate limits over HTTP against real edge processes: the 429 and its headers, a budget shared
by two edges through the real Redis, local limits while Redis is stopped, and PayNow's own
classes (sign-in strictest, per person, per API key, failed credentials) on the whole stack."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.paynow_http import PASSWORD, PayNow, open_shop, running_paynow, sign_up
from tests.edge.library import Process, free_port, library_edge
from tests.edge.redis_server import private_redis, shared_redis_url, unique_prefix

pytestmark = pytest.mark.e2e
_CLASSES = ("public", "user", "merchant", "auth-strict", "credential-failures")


def _limits_file(directory: Path, **bursts: int) -> Path:
    """A budgets file where class `name` allows `bursts[name]` requests per hour (1000 for
    classes not given), so nothing refills during a test."""
    path = directory / "limits.toml"
    tables = []
    for name in _CLASSES:
        burst = bursts.get(name.replace("-", "_"), 1000)
        key = "caller" if name in {"user", "merchant"} else "client"
        tables.append(
            f'[classes.{name}]\nkey = "{key}"\nrate = {burst}\nper_s = 3600\nburst = {burst}\n'
        )
    path.write_text("\n".join(tables))
    return path


def _get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        found = {k.lower(): v for k, v in response.getheaders()}
        return response.status, found, response.read()
    finally:
        connection.close()


def _metric(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name):
                return float(line.rsplit(" ", 1)[1])
    return None


@contextlib.contextmanager
def _edge(directory: Path, limits: Path, **env: str) -> Iterator[tuple[int, int, Process]]:
    """The library backend and an edge with `limits`: (edge port, metrics port, process)."""
    directory.mkdir()
    metrics_port = free_port()
    environ = {
        "PAYNOW_EDGE_RATE_LIMITS_FILE": str(limits),
        "PAYNOW_EDGE_METRICS_PORT": str(metrics_port),
        **env,
    }
    with library_edge(directory, env=environ) as (port, process):
        yield port, metrics_port, process


def _redis_env(url: str) -> dict[str, str]:
    return {"PAYNOW_EDGE_REDIS_URL": url, "PAYNOW_EDGE_REDIS_PREFIX": unique_prefix()}


def test_past_its_budget_a_client_gets_429_with_the_headers(tmp_path: Path) -> None:
    limits = _limits_file(tmp_path, public=3)
    with _edge(tmp_path / "lib", limits) as (port, metrics_port, _):
        answers = [_get(port, "/v1/shelves/s1") for _ in range(3)]
        assert [status for status, _, _ in answers] == [200, 200, 200]
        assert [h["ratelimit-remaining"] for _, h, _ in answers] == ["2", "1", "0"]
        assert {h["ratelimit-limit"] for _, h, _ in answers} == {"3"}
        assert {h["ratelimit-policy"] for _, h, _ in answers} == {"3;w=3600"}

        status, headers, body = _get(port, "/v1/shelves/s1")
        assert status == 429
        assert 1190 <= int(headers["retry-after"]) <= 1200  # one request in 3600 s / 3
        assert headers["ratelimit-remaining"] == "0"
        assert headers["content-type"] == "application/json"
        error = json.loads(body)
        assert error["code"] == 8
        info, retry = error["details"]
        assert info["reason"] == "RATE_LIMITED"
        assert info["metadata"]["rateLimitClass"] == "public"
        assert retry["@type"].endswith("google.rpc.RetryInfo")
        assert retry["retryDelay"].endswith("s")
        # Another route of the same class shares the budget; health is never limited.
        assert _get(port, "/v1/shelves/s1/theme")[0] == 429
        assert _get(port, "/healthz")[0] == 200
        refused = _metric(metrics_port, 'paynow_edge_rate_limited_total{rate_limit_class="public"}')
        assert refused == 2


def test_two_edges_share_one_budget_through_redis(tmp_path: Path) -> None:
    redis_env = {
        "PAYNOW_EDGE_REDIS_URL": shared_redis_url(),
        "PAYNOW_EDGE_REDIS_PREFIX": unique_prefix(),
    }
    limits = _limits_file(tmp_path, public=4)
    with (
        _edge(tmp_path / "a", limits, **redis_env) as (first, _, _),
        _edge(tmp_path / "b", limits, **redis_env) as (second, _, _),
    ):
        statuses = [_get(port, "/v1/shelves/s1")[0] for port in (first, first, second, second)]
        assert statuses == [200, 200, 200, 200]
        # Each edge alone would have two left; together the four are spent.
        assert _get(first, "/v1/shelves/s1")[0] == 429
        assert _get(second, "/v1/shelves/s1")[0] == 429


def test_with_redis_stopped_the_edge_keeps_serving_with_local_limits(tmp_path: Path) -> None:
    limits = _limits_file(tmp_path, public=3)
    with private_redis(tmp_path) as redis_server:
        env = {
            "PAYNOW_EDGE_REDIS_URL": redis_server.url,
            "PAYNOW_EDGE_REDIS_PREFIX": unique_prefix(),
        }
        with _edge(tmp_path / "lib", limits, **env) as (port, metrics_port, process):
            assert _get(port, "/v1/shelves/s1")[0] == 200
            assert _metric(metrics_port, "paynow_edge_rate_limit_redis_up") == 1
            redis_server.stop()
            statuses = [_get(port, "/v1/shelves/s1")[0] for _ in range(4)]
            # Served, and still limited: this process's own bucket of three, then 429.
            assert statuses == [200, 200, 200, 429]
            line = process.wait_for('"rate_limit_redis_unavailable"')
            assert "per edge process" in line
            assert redis_server.url not in process.output()
            assert _metric(metrics_port, "paynow_edge_rate_limit_redis_up") == 0
            fallbacks = _metric(metrics_port, "paynow_edge_rate_limit_local_fallbacks_total")
            assert fallbacks == 4


@dataclasses.dataclass
class Callers:
    stack: PayNow
    person: tuple[str, str]  # account id, access token
    owner_token: str
    api_key: str
    merchant_id: str


@pytest.fixture(scope="module")
async def callers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Callers]:
    """The whole stack with small budgets (six sign-ins per address, five calls per person
    or API key, three failed credentials per address) and X-Forwarded-For believed from
    127.0.0.1, so each test can be a client of its own address."""
    directory = tmp_path_factory.mktemp("rate-limits")
    limits = _limits_file(directory, auth_strict=6, user=5, merchant=5, credential_failures=3)
    async with running_paynow(
        directory / "data",
        PAYNOW_EDGE_RATE_LIMITS_FILE=str(limits),
        PAYNOW_EDGE_TRUSTED_PROXIES="127.0.0.1/32",
    ) as paynow:
        person = await sign_up(paynow.http, "person")
        _, owner_token = await sign_up(paynow.http, "owner")
        merchant, api_key = await open_shop(paynow.http, owner_token)  # two of the owner's five
        yield Callers(paynow, person, owner_token, api_key, merchant["id"])


async def test_sign_in_is_the_strictest_class(callers: Callers) -> None:
    http, client = callers.stack.http, {"X_Forwarded_For": "198.51.100.1"}
    wrong = {"email": "nobody@example.com", "password": PASSWORD}
    attempts = [await http.call("POST", "/v1/auth:login", wrong, **client) for _ in range(7)]
    assert [a.status for a in attempts] == [401] * 6 + [429]
    assert attempts[-1].reason == "RATE_LIMITED"
    assert attempts[-1].json["details"][0]["metadata"]["rateLimitClass"] == "auth-strict"
    assert int(attempts[-1].headers["Retry-After"]) > 0
    # Register shares the class; other public routes and other addresses are unaffected.
    register = await http.call("POST", "/v1/auth:register", {}, **client)
    assert register.status == 429
    assert (await http.call("GET", "/v1/auth/jwks", **client)).status == 200
    stranger = {"email": "stranger@example.com", "password": PASSWORD}
    other = await http.call("POST", "/v1/auth:login", stranger, X_Forwarded_For="198.51.100.2")
    assert other.status == 401


async def test_each_person_has_a_budget_of_their_own(callers: Callers) -> None:
    http = callers.stack.http
    account_id, token = callers.person
    path = f"/v1/accounts/{account_id}"
    replies = [await http.call("GET", path, token=token) for _ in range(6)]
    assert [r.status for r in replies] == [200] * 5 + [429]
    assert replies[0].headers["RateLimit-Remaining"] == "4"
    assert replies[-1].json["details"][0]["metadata"]["rateLimitClass"] == "user"
    # Same address, another person: their own bucket.
    owner_accounts = await http.call("GET", "/v1/accounts", token=callers.owner_token)
    assert owner_accounts.status == 200


async def test_each_api_key_has_a_budget_of_its_own(callers: Callers) -> None:
    http = callers.stack.http
    replies = [await http.call("GET", "/v1/payments", token=callers.api_key) for _ in range(6)]
    assert [r.status for r in replies] == [200] * 5 + [429]
    assert replies[-1].json["details"][0]["metadata"]["rateLimitClass"] == "merchant"
    second = await http.call(
        "POST",
        f"/v1/merchants/{callers.merchant_id}/apiKeys",
        {"displayName": "second"},
        token=callers.owner_token,
    )
    assert second.status == 200, second.body
    fresh = await http.call("GET", "/v1/payments", token=second.json["secret"])
    assert fresh.status == 200


async def test_failed_credentials_are_throttled_per_address(callers: Callers) -> None:
    http, client = callers.stack.http, {"X_Forwarded_For": "198.51.100.3"}
    guesses = [
        await http.call("GET", "/v1/payments", token=f"sk_guess{i}", **client) for i in range(4)
    ]
    assert [g.status for g in guesses] == [401, 401, 401, 429]
    assert guesses[-1].json["details"][0]["metadata"]["rateLimitClass"] == "credential-failures"
    # While blocked, the address is refused before its credentials are even checked...
    blocked = await http.call("GET", "/v1/merchants", token=callers.owner_token, **client)
    assert blocked.status == 429
    # ...and public routes and other addresses go on as before.
    assert (await http.call("GET", "/v1/auth/jwks", **client)).status == 200
    other = await http.call("GET", "/v1/merchants", token=callers.owner_token)
    assert other.status == 200
