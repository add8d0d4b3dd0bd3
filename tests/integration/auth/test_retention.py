"""The retention purge as auth wires and runs it, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from services.auth.app import wire
from services.auth.config import AuthSettings
from services.framework import ConfigError, Secret, load_settings

from .conftest import AuthStack, expect_error, pb


def settings(tmp_path: Path, **overrides: object) -> AuthSettings:
    values: dict[str, object] = {
        "service": "auth",
        "port": 0,
        "database_url": Secret(f"sqlite+aiosqlite:///{tmp_path}/auth.db"),
        "internal_token": Secret("t" * 32),
        "account_addr": "127.0.0.1:1",
        **overrides,
    }
    return AuthSettings(**values)  # type: ignore[arg-type]


def test_wire_runs_the_purge_as_a_background_job_at_its_interval(tmp_path: Path) -> None:
    """`retention-purge` is registered, running the service's Retention every interval."""
    service = wire(settings(tmp_path, purge_interval_s=120.0))
    jobs = {job.name: job for job in service.app.background_jobs}
    assert jobs["retention-purge"].interval_s == 120.0
    assert jobs["retention-purge"].run == service.retention.purge


def test_the_purge_settings_come_from_paynow_auth_variables(tmp_path: Path) -> None:
    """PURGE_INTERVAL_S and REFRESH_TOKEN_RETENTION_S, defaulting to an hour and a week."""
    environ = {
        "PAYNOW_INTERNAL_TOKEN": "t" * 32,
        "PAYNOW_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/auth.db",
        "PAYNOW_AUTH_PORT": "0",
        "PAYNOW_AUTH_ACCOUNT_ADDR": "127.0.0.1:1",
    }
    defaults = load_settings(AuthSettings, "auth", environ)
    assert (defaults.purge_interval_s, defaults.refresh_token_retention_s) == (3600.0, 604800)
    environ |= {"PAYNOW_AUTH_PURGE_INTERVAL_S": "60", "PAYNOW_AUTH_REFRESH_TOKEN_RETENTION_S": "0"}
    changed = load_settings(AuthSettings, "auth", environ)
    assert (changed.purge_interval_s, changed.refresh_token_retention_s) == (60.0, 0)


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"purge_interval_s": 0.0}, "PAYNOW_AUTH_PURGE_INTERVAL_S"),
        ({"refresh_token_retention_s": -1}, "PAYNOW_AUTH_REFRESH_TOKEN_RETENTION_S"),
    ],
)
def test_a_purge_setting_out_of_range_is_refused(
    tmp_path: Path, override: dict[str, object], variable: str
) -> None:
    """A zero interval would spin and a negative retention would purge live tokens."""
    with pytest.raises(ConfigError, match=variable):
        settings(tmp_path, **override)


async def test_a_purged_refresh_token_is_refused_as_an_unknown_one(stack: AuthStack) -> None:
    """Over gRPC: past expiry plus retention the row goes; Refresh still says INVALID."""
    email, _ = await stack.register()
    tokens = await stack.login(email)
    stack.clock.advance(
        stack.settings.refresh_token_ttl_s + stack.settings.refresh_token_retention_s + 1
    )
    assert await stack.service.retention.purge() == 2  # the token and its family
    assert await stack.service.retention.purge() == 0
    await expect_error(
        stack.stub().Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )
