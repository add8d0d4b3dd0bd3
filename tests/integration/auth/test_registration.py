"""Register across auth's and account's databases when account is down, on SQLite and
PostgreSQL: nothing is left half-made, and a retry or the sweep completes it exactly once."""

from __future__ import annotations

from pathlib import Path

import grpc

from paynow.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from services.framework import close_channels, new_id
from services.framework.testing import caller_metadata

from .conftest import (
    PASSWORD,
    AuthStack,
    account_on_port,
    auth_stack,
    expect_error,
    free_port,
    pb,
)


async def _register_while_down(stack: AuthStack, email: str) -> None:
    await expect_error(
        stack.stub().Register(pb.RegisterRequest(email=email, password=PASSWORD, display_name="A")),
        grpc.StatusCode.UNAVAILABLE,
        "ACCOUNT_SERVICE_UNAVAILABLE",
    )


async def test_register_with_account_down_then_a_retry_makes_exactly_one_account(
    database_url: str, tmp_path: Path
) -> None:
    """Down: UNAVAILABLE and only a PENDING credential; back up: the retry makes one account."""
    port = free_port()
    async with auth_stack(database_url, tmp_path, account_port=port) as stack:
        email = f"{new_id('usr')}@example.com"
        await _register_while_down(stack, email)
        assert await stack.credential_states(email) == ["PENDING"]
        async with account_on_port(stack.account_settings):
            # A fresh channel, as a restarted auth would have: the old one may still be in
            # its reconnect back-off after the refused connections.
            await close_channels()
            assert await stack.accounts_with_email(email) == 0
            _, account_id = await stack.register(email)
            await expect_error(
                stack.stub().Register(
                    pb.RegisterRequest(email=email, password=PASSWORD, display_name="A")
                ),
                grpc.StatusCode.ALREADY_EXISTS,
                "EMAIL_ALREADY_REGISTERED",
            )
            assert await stack.accounts_with_email(email) == 1
            assert await stack.credential_states(email) == ["ACTIVE"]
            assert (await stack.login(email)).refresh_token
            assert account_id.startswith("acc_")


async def test_the_sweep_completes_a_sign_up_interrupted_by_an_outage(
    database_url: str, tmp_path: Path
) -> None:
    """Without any retry, the sweep finishes the PENDING sign-up once account is back."""
    port = free_port()
    async with auth_stack(database_url, tmp_path, account_port=port) as stack:
        email = f"{new_id('usr')}@example.com"
        await _register_while_down(stack, email)
        async with account_on_port(stack.account_settings):
            await close_channels()
            stack.clock.advance(stack.settings.registration_sweep_after_s + 1)
            assert await stack.service.sweep() == 1
            assert await stack.service.sweep() == 0
            assert await stack.accounts_with_email(email) == 1
            assert await stack.credential_states(email) == ["ACTIVE"]
            assert (await stack.login(email)).refresh_token


async def test_the_sweep_removes_a_pending_sign_up_whose_email_another_account_took(
    database_url: str, tmp_path: Path
) -> None:
    """EMAIL_ALREADY_EXISTS from account: the PENDING credential is deleted, nothing else."""
    port = free_port()
    async with auth_stack(database_url, tmp_path, account_port=port) as stack:
        email = f"{new_id('usr')}@example.com"
        await _register_while_down(stack, email)
        async with account_on_port(stack.account_settings):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await account_service_pb2_grpc.AccountServiceStub(channel).CreateAccount(
                    account_service_pb2.CreateAccountRequest(
                        kind=account_pb2.ACCOUNT_KIND_PERSONAL,
                        email=email,
                        display_name="Someone",
                        currency_code="EUR",
                        idempotency_key=new_id("reg"),
                    ),
                    metadata=caller_metadata(stack.settings, service="auth"),
                )
            await close_channels()
            stack.clock.advance(stack.settings.registration_sweep_after_s + 1)
            assert await stack.service.sweep() == 1
            assert await stack.credential_states(email) == []
            assert await stack.accounts_with_email(email) == 1
