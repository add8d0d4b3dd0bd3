"""Fixtures for framework tests: one real in-process account server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from paynow.account.v1 import account_service_pb2_grpc
from services.framework import ServiceSettings
from services.framework.testing import (
    InProcessServer,
    caller_metadata,
    make_settings,
    serve_in_process,
)
from tests.framework.fakes import USER_ID, FakeAccountServicer, make_app


@pytest.fixture
def settings() -> ServiceSettings:
    return make_settings("account")


@pytest.fixture
def servicer() -> FakeAccountServicer:
    return FakeAccountServicer()


@pytest.fixture
async def server(
    settings: ServiceSettings, servicer: FakeAccountServicer
) -> AsyncIterator[InProcessServer]:
    async with serve_in_process(make_app(settings, servicer)) as running:
        yield running


@pytest.fixture
def stub(server: InProcessServer) -> account_service_pb2_grpc.AccountServiceStub:
    return server.stub(account_service_pb2_grpc.AccountServiceStub)


@pytest.fixture
def user_stub(
    server: InProcessServer, settings: ServiceSettings
) -> account_service_pb2_grpc.AccountServiceStub:
    """A stub whose calls come from an internal caller acting for a signed-in user."""
    return server.stub(
        account_service_pb2_grpc.AccountServiceStub, caller_metadata(settings, user_id=USER_ID)
    )
