"""A real account server on 127.0.0.1:0, once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from services.account.app import build
from services.account.config import AccountSettings
from services.framework import Secret
from services.framework.testing import serve_in_process

from .harness import AccountHarness


@pytest.fixture
async def account(database_url: str) -> AsyncIterator[AccountHarness]:
    settings = AccountSettings(
        service="account",
        port=0,
        database_url=Secret(database_url),
        internal_token=Secret(secrets.token_urlsafe(32)),
        grace_period_s=2.0,
        log_format="json",
    )
    async with serve_in_process(build(settings)) as server:
        harness = AccountHarness(server, settings, database_url)
        yield harness
        await harness.assert_ledger_balanced()
