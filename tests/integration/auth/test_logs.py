"""What auth logs: decisions someone will search for, and never a password, token or hash."""

from __future__ import annotations

import json

import grpc
from structlog.testing import capture_logs

from services.auth.domain import hash_refresh_token

from .conftest import PASSWORD, AuthStack, expect_error, pb

NEW_PASSWORD = "a different long passphrase"


async def test_no_password_token_or_hash_appears_in_any_log_line(stack: AuthStack) -> None:
    """Captured before redaction: the code never hands a secret to the logger at all."""
    with capture_logs() as logs:
        email, account_id = await stack.register()
        await expect_error(
            stack.stub().Login(pb.LoginRequest(email=email, password=NEW_PASSWORD)),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_CREDENTIALS",
        )
        first = await stack.login(email)
        second = (
            await stack.stub().Refresh(pb.RefreshRequest(refresh_token=first.refresh_token))
        ).tokens
        await expect_error(
            stack.stub().Refresh(pb.RefreshRequest(refresh_token=first.refresh_token)),
            grpc.StatusCode.UNAUTHENTICATED,
            "REFRESH_TOKEN_REUSED",
        )
        changed = await stack.as_user(account_id).ChangePassword(
            pb.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD)
        )
        await stack.stub().Logout(pb.LogoutRequest(refresh_token=changed.tokens.refresh_token))
    lines = json.dumps(logs, default=str)
    secrets = [PASSWORD, NEW_PASSWORD]
    for tokens in (first, second, changed.tokens):
        secrets += [tokens.access_token, tokens.refresh_token]
        secrets += [hash_refresh_token(tokens.refresh_token)]
        secrets += tokens.access_token.split(".")  # no part of a JWT either
    assert [secret for secret in secrets if secret in lines] == []
    assert "$argon2id$" not in lines
    events = {entry["event"] for entry in logs}
    assert {"login_succeeded", "login_failed", "refresh_token_reused", "rpc_finished"} <= events


async def test_reuse_is_logged_as_a_security_event_with_the_family(stack: AuthStack) -> None:
    """refresh_token_reused is a warning naming the session (family) and the account."""
    email, account_id = await stack.register()
    first = await stack.login(email)
    await stack.stub().Refresh(pb.RefreshRequest(refresh_token=first.refresh_token))
    with capture_logs() as logs:
        await expect_error(
            stack.stub().Refresh(pb.RefreshRequest(refresh_token=first.refresh_token)),
            grpc.StatusCode.UNAUTHENTICATED,
            "REFRESH_TOKEN_REUSED",
        )
    [reused] = [entry for entry in logs if entry["event"] == "refresh_token_reused"]
    assert reused["log_level"] == "warning"
    assert reused["account_id"] == account_id
    assert reused["family_id"].startswith("ses_")


async def test_the_purge_logs_counts_and_never_a_digest(stack: AuthStack) -> None:
    """expired_rows_purged counts rows per table; no token or digest reaches any line."""
    email, _ = await stack.register()
    tokens = await stack.login(email)
    stack.clock.advance(
        stack.settings.refresh_token_ttl_s + stack.settings.refresh_token_retention_s + 1
    )
    with capture_logs() as logs:
        await stack.service.retention.purge()
    lines = json.dumps(logs, default=str)
    assert tokens.refresh_token not in lines
    assert hash_refresh_token(tokens.refresh_token) not in lines
    [purged] = [entry for entry in logs if entry["event"] == "expired_rows_purged"]
    assert (purged["refresh_tokens"], purged["token_families"]) == (1, 1)
