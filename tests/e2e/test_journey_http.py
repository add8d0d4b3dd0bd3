"""The PayNow journey over HTTP only: the real stack as `make run` starts it, plain requests
to the edge, from sign-up to a full refund, plus a stream and every class of error."""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.paynow_http import PASSWORD, Http, PayNow, open_shop, running_paynow, sign_up

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def paynow(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PayNow]:
    """One stack for the module, each test with people and shops of its own."""
    async with running_paynow(tmp_path_factory.mktemp("journey") / "data") as running:
        yield running


async def _balance(http: Http, account_id: str, token: str) -> int:
    reply = await http.call("GET", f"/v1/accounts/{account_id}", token=token)
    assert reply.status == 200, reply.body
    return int(reply.json["balanceMinor"])


async def _deposit(http: Http, account_id: str, token: str, amount: int, key: str) -> Any:
    body = {"amountMinor": str(amount), "currencyCode": "EUR"}
    return await http.call(
        "POST", f"/v1/accounts/{account_id}:deposit", body, token=token, Idempotency_Key=key
    )


async def _payment(http: Http, secret: str, amount: int) -> dict[str, Any]:
    body = {"amountMinor": str(amount), "currencyCode": "EUR", "description": "tea"}
    key = secrets.token_hex(8)
    created = await http.call("POST", "/v1/payments", body, token=secret, Idempotency_Key=key)
    assert created.status == 200, created.body
    payment: dict[str, Any] = created.json
    return payment


async def _approve(http: Http, payment_id: str, token: str) -> Any:
    key = secrets.token_hex(8)
    return await http.call(
        "POST", f"/v1/payments/{payment_id}:approve", {}, token=token, Idempotency_Key=key
    )


async def _refund(http: Http, payment_id: str, secret: str, amount: int) -> Any:
    body = {"amountMinor": str(amount), "reason": "returned"}
    key = secrets.token_hex(8)
    return await http.call(
        "POST", f"/v1/payments/{payment_id}:refund", body, token=secret, Idempotency_Key=key
    )


async def test_the_journey_moves_the_money_from_deposit_to_full_refund(paynow: PayNow) -> None:
    """Register, log in, deposit, open a shop with a key, pay, approve, refund in two parts."""
    http = paynow.http
    shopper, shopper_token = await sign_up(http, "shopper")
    _, owner_token = await sign_up(http, "owner")
    deposited = await _deposit(http, shopper, shopper_token, 10_000, secrets.token_hex(8))
    assert deposited.status == 200, deposited.body
    assert await _balance(http, shopper, shopper_token) == 10_000
    merchant, secret = await open_shop(http, owner_token)
    settlement = merchant["settlementAccountId"]

    payment = await _payment(http, secret, 2_500)
    assert payment["state"] == "PAYMENT_STATE_REQUIRES_APPROVAL"
    approved = await _approve(http, payment["id"], shopper_token)
    assert (approved.status, approved.json["state"]) == (200, "PAYMENT_STATE_SUCCEEDED")
    assert await _balance(http, shopper, shopper_token) == 7_500
    assert await _balance(http, settlement, owner_token) == 2_500

    partial = await _refund(http, payment["id"], secret, 1_000)
    assert partial.status == 200, partial.body
    assert partial.json["payment"]["state"] == "PAYMENT_STATE_PARTIALLY_REFUNDED"
    assert await _balance(http, shopper, shopper_token) == 8_500
    full = await _refund(http, payment["id"], secret, 1_500)
    assert full.status == 200, full.body
    assert full.json["payment"]["state"] == "PAYMENT_STATE_REFUNDED"
    assert await _balance(http, shopper, shopper_token) == 10_000
    assert await _balance(http, settlement, owner_token) == 0


async def test_an_idempotent_replay_returns_the_same_body_and_moves_money_once(
    paynow: PayNow,
) -> None:
    """The same Idempotency-Key twice: byte-identical answers, one deposit."""
    http = paynow.http
    account, token = await sign_up(http, "saver")
    key = secrets.token_hex(8)
    first = await _deposit(http, account, token, 700, key)
    again = await _deposit(http, account, token, 700, key)
    assert (first.status, again.status) == (200, 200)
    assert again.json == first.json
    assert await _balance(http, account, token) == 700


def _watch(port: int, path: str, secret: str, lines: asyncio.Queue[Any], loop: Any) -> None:
    """Read an NDJSON stream line by line, handing each parsed line to the loop's queue."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {secret}"})
        response = connection.getresponse()
        loop.call_soon_threadsafe(lines.put_nowait, response.getheader("content-type"))
        while line := response.readline():
            loop.call_soon_threadsafe(lines.put_nowait, json.loads(line))
    finally:
        connection.close()
        loop.call_soon_threadsafe(lines.put_nowait, None)


async def test_watching_a_payment_streams_its_approval_as_ndjson(paynow: PayNow) -> None:
    """`GET /v1/payments/{id}:watch` sends one JSON line per state as it happens."""
    http = paynow.http
    shopper, shopper_token = await sign_up(http, "watcher")
    await _deposit(http, shopper, shopper_token, 5_000, secrets.token_hex(8))
    _, owner_token = await sign_up(http, "streamer")
    _, secret = await open_shop(http, owner_token)
    payment = await _payment(http, secret, 1_200)
    lines: asyncio.Queue[Any] = asyncio.Queue()
    path = f"/v1/payments/{payment['id']}:watch"
    args = (http.port, path, secret, lines, asyncio.get_running_loop())
    threading.Thread(target=_watch, args=args, daemon=True).start()
    assert await asyncio.wait_for(lines.get(), 30) == "application/x-ndjson"
    first = await asyncio.wait_for(lines.get(), 30)
    assert first["state"] == "PAYMENT_STATE_REQUIRES_APPROVAL"
    assert (await _approve(http, payment["id"], shopper_token)).status == 200
    states = [first["state"]]
    while (line := await asyncio.wait_for(lines.get(), 30)) is not None:
        states.append(line["state"])
    assert states[-1] == "PAYMENT_STATE_SUCCEEDED"


async def test_an_invalid_request_is_400_with_bad_request_details(paynow: PayNow) -> None:
    """protovalidate's refusal reaches the client as 400 with the field violations."""
    reply = await paynow.http.call(
        "POST", "/v1/auth:register", {"email": "not-an-email", "password": PASSWORD}
    )
    assert (reply.status, reply.json["code"]) == (400, 3)
    assert "BadRequest" in reply.detail_types()


async def test_another_persons_account_is_404(paynow: PayNow) -> None:
    """Reading someone else's account answers as if it did not exist."""
    http = paynow.http
    other, _ = await sign_up(http, "other")
    _, token = await sign_up(http, "prober")
    reply = await http.call("GET", f"/v1/accounts/{other}", token=token)
    assert (reply.status, reply.json["code"]) == (404, 5)


async def test_a_patch_with_a_stale_etag_is_409_aborted(paynow: PayNow) -> None:
    """Updating with the etag of an older read fails with ABORTED, not a lost update."""
    http = paynow.http
    account, token = await sign_up(http, "editor")
    stale = (await http.call("GET", f"/v1/accounts/{account}", token=token)).json["etag"]
    path = f"/v1/accounts/{account}?updateMask=displayName"
    first = await http.call("PATCH", path, {"displayName": "One", "etag": stale}, token=token)
    assert first.status == 200, first.body
    second = await http.call("PATCH", path, {"displayName": "Two", "etag": stale}, token=token)
    assert (second.status, second.json["code"]) == (409, 10)


async def test_paying_more_than_the_balance_is_400_failed_precondition(paynow: PayNow) -> None:
    """Approving a payment the wallet cannot cover is FAILED_PRECONDITION, mapped to 400."""
    http = paynow.http
    _, shopper_token = await sign_up(http, "broke")
    _, owner_token = await sign_up(http, "seller")
    _, secret = await open_shop(http, owner_token)
    payment = await _payment(http, secret, 99_999)
    reply = await _approve(http, payment["id"], shopper_token)
    assert (reply.status, reply.json["code"]) == (400, 9)
    assert "INSUFFICIENT_FUNDS" in reply.body.decode()


async def test_a_wrong_method_is_405_with_allow(paynow: PayNow) -> None:
    """PUT on an account path is 405 and names the methods that exist."""
    reply = await paynow.http.call("PUT", "/v1/accounts/acc_x", {})
    assert (reply.status, reply.reason) == (405, "METHOD_NOT_ALLOWED")
    assert "GET" in reply.headers["Allow"]


async def test_an_unknown_path_is_404_route_not_found(paynow: PayNow) -> None:
    """No route: 404 in the Status shape."""
    reply = await paynow.http.call("GET", "/v1/nothing/here")
    assert (reply.status, reply.reason) == (404, "ROUTE_NOT_FOUND")


async def test_a_body_over_the_limit_is_413(paynow: PayNow) -> None:
    """A login body over 1 MiB is refused before it reaches auth."""
    reply = await paynow.http.raw("POST", "/v1/auth:login", b" " * (1024 * 1024 + 1))
    assert (reply.status, reply.reason) == (413, "BODY_TOO_LARGE")


async def test_repeated_bad_logins_are_429_too_many_attempts(paynow: PayNow) -> None:
    """After the free failures for one email, auth locks it: 429 with a RetryInfo delay."""
    http = paynow.http
    _, _ = await sign_up(http, "victim")
    email = f"locked-{secrets.token_hex(4)}@example.com"
    await http.call(
        "POST", "/v1/auth:register", {"email": email, "password": PASSWORD, "displayName": "V"}
    )
    statuses = []
    for _ in range(7):
        wrong = {"email": email, "password": "definitely the wrong one"}
        reply = await http.call("POST", "/v1/auth:login", wrong)
        statuses.append(reply.status)
        if reply.status == 429:
            break
    assert statuses[-1] == 429, statuses
    assert reply.reason == "TOO_MANY_ATTEMPTS"
    assert "RetryInfo" in reply.detail_types()
