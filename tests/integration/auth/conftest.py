"""A real auth server and a real account server on 127.0.0.1, as auth runs in production.

Auth's database is the parametrized one (SQLite, then PostgreSQL): auth is what these tests
are about. Account keeps a SQLite file of its own: the two cannot share the run's one
PostgreSQL schema (each has service_metadata and alembic_version), and account's own suite
covers it on PostgreSQL. Both servers share one internal token, as `make run` gives them.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text

from paynow.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from services.account.app import build as build_account
from services.account.config import AccountSettings
from services.auth.app import AuthService, wire
from services.auth.config import AuthSettings
from services.framework import Database, Secret, ServiceApp, new_id
from services.framework.testing import (
    InProcessServer,
    caller_metadata,
    serve_in_process,
    wait_until_serving,
)

PASSWORD = "correct horse battery staple"
pb = auth_service_pb2


class Clock:
    """Auth's clock, moved by the test: throttles and sweeps expire without sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def timestamp(self) -> float:
        return self.now.timestamp()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reason_of(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


async def expect_error(call: Any, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert (caught.value.code(), reason_of(caught.value)) == (code, reason)
    return caught.value


@dataclass
class AuthStack:
    auth: InProcessServer
    service: AuthService
    settings: AuthSettings
    account_settings: AccountSettings
    account_database_url: str
    clock: Clock

    @property
    def key_dir(self) -> Path:
        return self.settings.signing_key_path

    def stub(self, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
        return self.auth.stub(auth_service_pb2_grpc.AuthServiceStub, metadata)

    def as_user(self, account_id: str) -> Any:
        return self.stub(caller_metadata(self.settings, service="edge", user_id=account_id))

    async def register(self, email: str | None = None, password: str = PASSWORD) -> tuple[str, str]:
        email = email or f"{new_id('usr')}@example.com"
        response = await self.stub().Register(
            pb.RegisterRequest(email=email, password=password, display_name="Ada")
        )
        return email, response.account_id

    async def login(self, email: str, password: str = PASSWORD) -> Any:
        response = await self.stub().Login(pb.LoginRequest(email=email, password=password))
        return response.tokens

    async def jwks(self) -> dict[str, Any]:
        response = await self.stub().GetJwks(pb.GetJwksRequest())
        return {
            "keys": [
                json_format.MessageToDict(key, preserving_proto_field_name=True)
                for key in response.keys
            ]
        }

    async def accounts_with_email(self, email: str) -> int:
        """How many accounts account's own database holds for this email."""
        return int(
            await _scalar(
                self.account_database_url,
                "SELECT COUNT(*) FROM accounts WHERE email_key = :e",
                e=email.casefold(),
            )
        )

    async def credential_states(self, email: str) -> list[str]:
        database = Database(self.settings.database_url.reveal(), service="audit")
        try:
            async with database.transaction(readonly=True) as session:
                rows = await session.execute(
                    text("SELECT state FROM credentials WHERE email_key = :e"),
                    {"e": email.casefold()},
                )
                return [row.state for row in rows]
        finally:
            await database.dispose()


async def _scalar(url: str, sql: str, **params: object) -> Any:
    database = Database(url, service="audit")
    try:
        async with database.transaction(readonly=True) as session:
            return (await session.execute(text(sql), params)).scalar_one()
    finally:
        await database.dispose()


def account_settings(tmp_path: Path, token: Secret, port: int = 0) -> AccountSettings:
    return AccountSettings(
        service="account",
        port=port,
        database_url=Secret(f"sqlite+aiosqlite:///{tmp_path}/account/account.db"),
        internal_token=token,
        grace_period_s=2.0,
        log_format="json",
    )


@asynccontextmanager
async def account_on_port(settings: AccountSettings) -> AsyncIterator[ServiceApp]:
    """Account on a fixed port (serve_in_process always picks a new one)."""
    app = build_account(settings)
    port = await app.start()
    try:
        await wait_until_serving(f"127.0.0.1:{port}")
        yield app
    finally:
        await app.stop()


@asynccontextmanager
async def auth_stack(
    database_url: str,
    tmp_path: Path,
    *,
    account_port: int | None = None,
    **overrides: Any,
) -> AsyncIterator[AuthStack]:
    """Account (unless `account_port` names where it will be started later) and auth."""
    token = Secret(secrets.token_urlsafe(32))
    clock = Clock()
    accounts = account_settings(tmp_path, token, account_port or 0)
    values: dict[str, Any] = {
        "service": "auth",
        "port": 0,
        "database_url": Secret(database_url),
        "internal_token": token,
        "grace_period_s": 2.0,
        "log_format": "json",
        "account_addr": "",
        "signing_key_dir": str(tmp_path / "signing-keys"),
        "signing_key_reload_s": 0.0,  # every use re-lists the directory: rotation is seen now
        **overrides,
    }
    if account_port is not None:
        values["account_addr"] = f"127.0.0.1:{account_port}"
        async with _auth(AuthSettings(**values), accounts, clock) as running:
            yield running
        return
    async with serve_in_process(build_account(accounts)) as account:
        values["account_addr"] = account.address
        async with _auth(AuthSettings(**values), accounts, clock) as running:
            yield running


@asynccontextmanager
async def _auth(
    settings: AuthSettings, accounts: AccountSettings, clock: Clock
) -> AsyncIterator[AuthStack]:
    service = wire(settings, clock=clock)
    async with serve_in_process(service.app) as auth:
        yield AuthStack(auth, service, settings, accounts, accounts.database_url.reveal(), clock)


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[AuthStack]:
    async with auth_stack(database_url, tmp_path, login_email_free_failures=3) as running:
        yield running
