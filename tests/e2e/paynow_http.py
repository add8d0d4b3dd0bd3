"""The whole PayNow stack as `make run` starts it (edge included), driven over plain HTTP.

Requests go through http.client in a worker thread, so the event loop keeps draining the
services' output while a test waits for an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import json
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from services.framework._registry import load_registry
from services.framework._stack import Stack, free_ports, start_stack

PASSWORD = "correct horse battery staple"


@dataclasses.dataclass
class Reply:
    """One HTTP response: status, headers (case-insensitive) and the body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str | None:
        """The ErrorInfo reason of a Status body, if it has one."""
        for detail in self.json.get("details", []):
            if detail["@type"].endswith("google.rpc.ErrorInfo"):
                return str(detail["reason"])
        return None

    def detail_types(self) -> list[str]:
        return [d["@type"].rsplit(".", 1)[-1] for d in self.json.get("details", [])]


class Http:
    """A plain HTTP/1.1 client of the edge on 127.0.0.1:`port`."""

    def __init__(self, port: int) -> None:
        self.port = port

    def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    async def raw(self, method: str, path: str, body: bytes | None = None, **headers: str) -> Reply:
        """Send `body` as is; header names use `_` for `-` (`Idempotency_Key`)."""
        named = {k.replace("_", "-"): v for k, v in headers.items()}
        return await asyncio.to_thread(self._send, method, path, body, named)

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None, **headers: str
    ) -> Reply:
        """Send `body` as JSON, with `Authorization: Bearer <token>` when given."""
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        raw = None if body is None else json.dumps(body).encode()
        return await self.raw(method, path, raw, **headers)


@dataclasses.dataclass
class PayNow:
    """A running stack and a client of its edge."""

    stack: Stack
    http: Http

    @property
    def data_dir(self) -> Path:
        return Path(self.stack.env["PAYNOW_DATA_DIR"])


@contextlib.asynccontextmanager
async def running_paynow(data_dir: Path, **env: str) -> AsyncIterator[PayNow]:
    """Every registry service on free ports with its data in `data_dir`, as `make run` runs
    them; `env` adds variables (PAYNOW_EDGE_API_KEY_CACHE_S=…)."""
    ports = free_ports(load_registry().services)
    environ = {**os.environ, **env}
    environ.pop("PAYNOW_INTERNAL_TOKEN", None)
    async with start_stack(data_dir, ports=ports, env=environ) as stack:
        yield PayNow(stack, Http(ports["edge"]))


def unique_email(label: str) -> str:
    return f"{label}-{secrets.token_hex(4)}@example.com"


async def sign_up(http: Http, label: str) -> tuple[str, str]:
    """Register and log in a new person: (their account id, an access token)."""
    email = unique_email(label)
    registered = await http.call(
        "POST",
        "/v1/auth:register",
        {"email": email, "password": PASSWORD, "displayName": label.title()},
    )
    assert registered.status == 200, registered.body
    login = await http.call("POST", "/v1/auth:login", {"email": email, "password": PASSWORD})
    assert login.status == 200, login.body
    return registered.json["accountId"], login.json["tokens"]["accessToken"]


async def open_shop(http: Http, owner_token: str) -> tuple[dict[str, Any], str]:
    """A merchant of the owner and a live API key for it: (the merchant, the key's secret)."""
    created = await http.call(
        "POST",
        "/v1/merchants",
        {"displayName": "Tea Shop", "currencyCode": "EUR"},
        token=owner_token,
        Idempotency_Key=secrets.token_hex(8),
    )
    assert created.status == 200, created.body
    merchant = created.json
    key = await http.call(
        "POST",
        f"/v1/merchants/{merchant['id']}/apiKeys",
        {"displayName": "server"},
        token=owner_token,
    )
    assert key.status == 200, key.body
    return merchant, key.json["secret"]


async def create_payment(http: Http, api_key: str, amount_minor: int) -> dict[str, Any]:
    """A EUR payment of `amount_minor` created with the merchant's API key, awaiting approval."""
    created = await http.call(
        "POST",
        "/v1/payments",
        {"amountMinor": str(amount_minor), "currencyCode": "EUR", "description": "tea"},
        token=api_key,
        Idempotency_Key=secrets.token_hex(8),
    )
    assert created.status == 200, created.body
    payment: dict[str, Any] = created.json
    return payment
