"""Every AuthService RPC through real gRPC servers (auth and account), on SQLite and
PostgreSQL."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from paynow.account.v1 import account_service_pb2, account_service_pb2_grpc
from services.framework import new_id
from services.framework.testing import caller_metadata

from .conftest import PASSWORD, AuthStack, expect_error, pb

NEW_PASSWORD = "a different long passphrase"


async def test_register_creates_the_wallet_in_account(stack: AuthStack) -> None:
    """The account id Register returns is a personal EUR wallet in account's service."""
    _, account_id = await stack.register()
    assert account_id.startswith("acc_")
    async with grpc.aio.insecure_channel(stack.settings.account_addr) as channel:
        wallet = await account_service_pb2_grpc.AccountServiceStub(channel).GetAccount(
            account_service_pb2.GetAccountRequest(id=account_id),
            metadata=caller_metadata(stack.settings, service="edge", user_id=account_id),
        )
    assert (wallet.currency_code, wallet.display_name) == ("EUR", "Ada")


async def test_register_refuses_an_email_registered_in_another_case(stack: AuthStack) -> None:
    """Emails are unique ignoring case: ALREADY_EXISTS, EMAIL_ALREADY_REGISTERED."""
    email, _ = await stack.register()
    await expect_error(
        stack.stub().Register(
            pb.RegisterRequest(email=email.upper(), password=PASSWORD, display_name="Eve")
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "EMAIL_ALREADY_REGISTERED",
    )


async def test_register_refuses_a_short_password(stack: AuthStack) -> None:
    """Length rules only (NIST 800-63B): 14 characters is INVALID_ARGUMENT."""
    await expect_error(
        stack.stub().Register(
            pb.RegisterRequest(email="short@example.com", password="x" * 14, display_name="A")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
    )


async def test_register_refuses_a_currency_account_does_not_hold(stack: AuthStack) -> None:
    """account's UNSUPPORTED_CURRENCY becomes auth's INVALID_REQUEST on currency_code."""
    email = f"{new_id('usr')}@example.com"
    await expect_error(
        stack.stub().Register(
            pb.RegisterRequest(
                email=email, password=PASSWORD, display_name="Ada", currency_code="JPY"
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
    )
    assert await stack.credential_states(email) == []


async def test_login_returns_a_bearer_pair(stack: AuthStack) -> None:
    """Login answers an access token, `Bearer`, and an `rt_` refresh token with expiries."""
    email, _ = await stack.register()
    tokens = await stack.login(email.upper())
    assert tokens.token_type == "Bearer"
    assert tokens.refresh_token.startswith("rt_")
    lifetime = tokens.access_token_expire_time.seconds - stack.clock.now.timestamp()
    assert 290 < lifetime <= 300


async def test_unknown_email_and_wrong_password_get_the_same_answer(stack: AuthStack) -> None:
    """Both are UNAUTHENTICATED, INVALID_CREDENTIALS, with the same message."""
    email, _ = await stack.register()
    wrong = await expect_error(
        stack.stub().Login(pb.LoginRequest(email=email, password="wrong password")),
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_CREDENTIALS",
    )
    unknown = await expect_error(
        stack.stub().Login(pb.LoginRequest(email="nobody@example.com", password="wrong password")),
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_CREDENTIALS",
    )
    assert wrong.details() == unknown.details()


async def test_repeated_failures_are_throttled_with_retry_info_until_the_lock_expires(
    stack: AuthStack,
) -> None:
    """RESOURCE_EXHAUSTED, TOO_MANY_ATTEMPTS with RetryInfo; after the delay it works."""
    email, _ = await stack.register()
    for _ in range(4):
        await expect_error(
            stack.stub().Login(pb.LoginRequest(email=email, password="wrong password")),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_CREDENTIALS",
        )
    locked = await expect_error(
        stack.stub().Login(pb.LoginRequest(email=email, password=PASSWORD)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_ATTEMPTS",
    )
    status = rpc_status.from_call(locked)
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert retry.retry_delay.seconds == 1
    stack.clock.advance(1.5)
    assert (await stack.login(email)).refresh_token


async def test_the_edges_forwarded_address_is_the_one_throttled(stack: AuthStack) -> None:
    """From the edge, x-forwarded-for names the client; its lock spares other clients."""
    email, _ = await stack.register()
    edge = caller_metadata(stack.settings, service="edge")
    attacker = stack.stub((*edge, ("x-forwarded-for", "203.0.113.7")))
    for _ in range(21):
        await expect_error(
            attacker.Login(pb.LoginRequest(email=f"{new_id('usr')}@x.org", password="guess")),
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_CREDENTIALS",
        )
    await expect_error(
        attacker.Login(pb.LoginRequest(email=email, password=PASSWORD)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_ATTEMPTS",
    )
    someone_else = stack.stub((*edge, ("x-forwarded-for", "198.51.100.1")))
    assert await someone_else.Login(pb.LoginRequest(email=email, password=PASSWORD))


async def test_refresh_rotates_the_pair(stack: AuthStack) -> None:
    """Refresh returns a new refresh token, which works in turn."""
    email, _ = await stack.register()
    first = await stack.login(email)
    second = (
        await stack.stub().Refresh(pb.RefreshRequest(refresh_token=first.refresh_token))
    ).tokens
    assert second.refresh_token != first.refresh_token
    assert await stack.stub().Refresh(pb.RefreshRequest(refresh_token=second.refresh_token))


async def test_a_reused_refresh_token_revokes_its_family(stack: AuthStack) -> None:
    """Presenting a used token: REFRESH_TOKEN_REUSED, and the newest token dies too."""
    email, _ = await stack.register()
    first = await stack.login(email)
    second = (
        await stack.stub().Refresh(pb.RefreshRequest(refresh_token=first.refresh_token))
    ).tokens
    await expect_error(
        stack.stub().Refresh(pb.RefreshRequest(refresh_token=first.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_REUSED",
    )
    await expect_error(
        stack.stub().Refresh(pb.RefreshRequest(refresh_token=second.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )


async def test_logout_ends_the_session(stack: AuthStack) -> None:
    """After Logout the refresh token is REFRESH_TOKEN_INVALID."""
    email, _ = await stack.register()
    tokens = await stack.login(email)
    await stack.stub().Logout(pb.LogoutRequest(refresh_token=tokens.refresh_token))
    await expect_error(
        stack.stub().Refresh(pb.RefreshRequest(refresh_token=tokens.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )


async def test_logout_with_an_unknown_token_succeeds(stack: AuthStack) -> None:
    """Logout reveals nothing: an unknown token is OK too."""
    assert await stack.stub().Logout(pb.LogoutRequest(refresh_token="rt_unknown")) is not None


async def test_change_password_ends_other_sessions_and_returns_a_new_one(
    stack: AuthStack,
) -> None:
    """The old session's refresh token dies; the returned one and the new password work."""
    email, account_id = await stack.register()
    old = await stack.login(email)
    changed = await stack.as_user(account_id).ChangePassword(
        pb.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD)
    )
    await expect_error(
        stack.stub().Refresh(pb.RefreshRequest(refresh_token=old.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )
    assert await stack.stub().Refresh(pb.RefreshRequest(refresh_token=changed.tokens.refresh_token))
    assert (await stack.login(email, NEW_PASSWORD)).refresh_token


async def test_change_password_needs_a_signed_in_user(stack: AuthStack) -> None:
    """Without the edge's user identity ChangePassword is UNAUTHENTICATED."""
    await expect_error(
        stack.stub().ChangePassword(
            pb.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )


async def test_change_password_refuses_a_wrong_current_password(stack: AuthStack) -> None:
    """A wrong current password is INVALID_CREDENTIALS, and nothing changes."""
    email, account_id = await stack.register()
    await expect_error(
        stack.as_user(account_id).ChangePassword(
            pb.ChangePasswordRequest(current_password="wrong password", new_password=NEW_PASSWORD)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_CREDENTIALS",
    )
    assert (await stack.login(email)).refresh_token


async def test_change_password_refuses_an_unchanged_password(stack: AuthStack) -> None:
    """The same password again is INVALID_ARGUMENT, PASSWORD_UNCHANGED."""
    _, account_id = await stack.register()
    await expect_error(
        stack.as_user(account_id).ChangePassword(
            pb.ChangePasswordRequest(current_password=PASSWORD, new_password=PASSWORD)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PASSWORD_UNCHANGED",
    )


async def test_get_jwks_publishes_the_signing_key_and_is_cacheable(stack: AuthStack) -> None:
    """One OKP/Ed25519 key with kid, alg EdDSA and use sig; Cache-Control in the trailers."""
    call = stack.stub().GetJwks(pb.GetJwksRequest())
    response = await call
    [key] = response.keys
    assert (key.kty, key.crv, key.alg, key.use) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert key.kid
    assert key.x
    trailers = dict(await call.trailing_metadata())
    assert trailers["cache-control"] == "public, max-age=300"
