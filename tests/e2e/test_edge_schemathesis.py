"""Schemathesis against the live edge fronting the real PayNow stack.

Every operation gets a bounded number of generated requests (fixed seed) with real
credentials: a JWT from register + login and an API key from a merchant created through
the edge, so calls go past authentication. No answer may be a 5xx, and every answer must
match the document (schema, status, content type). Traffic stays on 127.0.0.1.

The operations come from docs/openapi.json, loaded at collection so that each is a test
of its own, and a test checks that the edge serves exactly that document. (Schemathesis'
fixture-based loader needs pytest internals that pytest 9.2 removed.) The stack runs on its
own event loop in a thread: schemathesis calls are synchronous, and the supervisor's
readers must keep draining the services' output meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from services.framework._stack import Stack, free_ports, start_stack

pytestmark = pytest.mark.e2e

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"

SEED = 20240607
MAX_EXAMPLES = 10
CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.status_code_conformance,
    checks.content_type_conformance,
]


class LiveStack:
    """The registry's services and the edge, run by start_stack on a private loop."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.stack: Stack | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ports = free_ports(["account", "auth", "merchant", "edge"])
        try:
            async with start_stack(self._data_dir, services=["edge"], ports=ports) as stack:
                self.stack = stack
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def __enter__(self) -> LiveStack:
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None or self.stack is None:
            raise RuntimeError("the PayNow stack did not start") from self._error
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    @property
    def edge_port(self) -> int:
        assert self.stack is not None
        return self.stack.processes["edge"].port


def send(port: int, method: str, path: str, body: Any = None, token: str = "") -> Any:
    """Call the edge with JSON; the decoded reply, which must be a 200."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    raw = None if body is None else json.dumps(body)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=raw, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    assert response.status == 200, (path, response.status, data)
    return json.loads(data)


def post(port: int, path: str, body: Any, token: str = "") -> Any:
    return send(port, "POST", path, body, token)


@dataclasses.dataclass(frozen=True)
class Credentials:
    jwt: str
    api_key: str


def sign_up(port: int) -> Credentials:
    """A person (register + login) with a merchant and its API key, all over HTTP."""
    email = f"fuzz-{secrets.token_hex(4)}@example.com"
    password = "correct horse battery staple"
    post(port, "/v1/auth:register", {"email": email, "password": password, "displayName": "F"})
    jwt = post(port, "/v1/auth:login", {"email": email, "password": password})["tokens"]
    token = jwt["accessToken"]
    merchant = post(
        port,
        f"/v1/merchants?idempotencyKey={secrets.token_hex(8)}",
        {"displayName": "Fuzz shop", "currencyCode": "EUR"},
        token,
    )
    key = post(port, f"/v1/merchants/{merchant['id']}/apiKeys", {"displayName": "fuzz"}, token)
    return Credentials(jwt=token, api_key=key["secret"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveStack, Credentials]]:
    with LiveStack(tmp_path_factory.mktemp("paynow")) as running:
        yield running, sign_up(running.edge_port)


@pytest.fixture(scope="module")
def base_url(live: tuple[LiveStack, Credentials]) -> str:
    return f"http://127.0.0.1:{live[0].edge_port}"


@pytest.fixture(scope="module")
def credentials(live: tuple[LiveStack, Credentials]) -> Credentials:
    return live[1]


CONFIG = SchemathesisConfig.from_dict(
    {"seed": SEED, "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True}}
)


def undotted(document: dict[str, Any]) -> dict[str, Any]:
    """The document with `{account.id}`-style path parameters renamed `{account_id}`.

    Schemathesis 4.32 fills paths with `str.format`, which reads `{account.id}` as attribute
    `id` of `account` and fails to load the operation. The requests sent are the same, since
    a path parameter's name never reaches the wire.
    """
    paths: dict[str, Any] = {}
    for path, item in document["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    parameter["name"] = parameter["name"].replace(".", "_")
        paths[re.sub(r"\{[^}]+\}", lambda m: m[0].replace(".", "_"), path)] = item
    return {**document, "paths": paths}


schema = schemathesis.openapi.from_dict(undotted(json.loads(DOCUMENT.read_text())), config=CONFIG)


def test_the_edge_serves_the_document_being_fuzzed(live: tuple[LiveStack, Credentials]) -> None:
    """/openapi.json of the PayNow edge is docs/openapi.json."""
    assert send(live[0].edge_port, "GET", "/openapi.json") == json.loads(DOCUMENT.read_text())


def test_the_jwt_passes_user_routes(live: tuple[LiveStack, Credentials]) -> None:
    """The fuzzer's JWT is accepted: its calls reach the services."""
    assert "accounts" in send(live[0].edge_port, "GET", "/v1/accounts", token=live[1].jwt)


def test_the_api_key_passes_merchant_routes(live: tuple[LiveStack, Credentials]) -> None:
    """The fuzzer's API key is accepted: its calls reach the services."""
    assert "payments" in send(live[0].edge_port, "GET", "/v1/payments", token=live[1].api_key)


def authorization(case: Any, credentials: Credentials) -> dict[str, str]:
    """The header the operation's security asks for: the JWT where a person may call, the
    API key on merchant-only operations, nothing on public ones."""
    schemes = {name for item in case.operation.definition.raw["security"] for name in item}
    if "bearerJwt" in schemes:
        return {"Authorization": f"Bearer {credentials.jwt}"}
    if "apiKey" in schemes:
        return {"Authorization": f"Bearer {credentials.api_key}"}
    return {}


@schema.parametrize()
def test_every_operation_answers_as_documented(
    case: Any, base_url: str, credentials: Credentials
) -> None:
    """No 5xx, and every status, body and content type is what the document says."""
    headers = authorization(case, credentials)
    case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=15)
