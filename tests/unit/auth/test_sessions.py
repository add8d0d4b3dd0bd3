"""Sign-in, rotation, sign-out and password change, over in-memory fakes."""

from __future__ import annotations

import pytest

from services.auth.domain import (
    InvalidCredentials,
    PasswordUnchanged,
    RefreshTokenInvalid,
    RefreshTokenReused,
    Registrations,
    Sessions,
    TooManyAttempts,
    hash_refresh_token,
)
from services.framework import new_id

from .conftest import PASSWORD
from .fakes import Clock, FakeAccounts, FakeHasher, InMemoryStore

WRONG = "not the password at all"


async def person(registrations: Registrations) -> tuple[str, str]:
    address = f"{new_id('usr')}@example.com"
    return address, await registrations.register(address, PASSWORD, "Ada")


async def test_login_returns_a_pair_for_the_account(
    sessions: Sessions, registrations: Registrations
) -> None:
    """The access token is for the account; the refresh token is an `rt_` secret."""
    address, account_id = await person(registrations)
    tokens = await sessions.login(address.upper(), PASSWORD)
    assert account_id in tokens.access_token
    assert tokens.refresh_token.startswith("rt_")


async def test_refresh_tokens_are_stored_only_as_hashes(
    sessions: Sessions, registrations: Registrations, store: InMemoryStore
) -> None:
    """The store holds the SHA-256 of the refresh token, never the token."""
    address, _ = await person(registrations)
    tokens = await sessions.login(address, PASSWORD)
    assert list(store.tables.tokens) == [hash_refresh_token(tokens.refresh_token)]


async def test_unknown_email_and_wrong_password_do_the_same_work_and_answer_alike(
    sessions: Sessions, registrations: Registrations, hasher: FakeHasher
) -> None:
    """Both spend exactly one verification and raise InvalidCredentials."""
    address, _ = await person(registrations)
    hasher.verifications = 0
    with pytest.raises(InvalidCredentials):
        await sessions.login(address, WRONG)
    wrong_password_work, hasher.verifications = hasher.verifications, 0
    with pytest.raises(InvalidCredentials):
        await sessions.login(f"{new_id('usr')}@example.com", WRONG)
    assert hasher.verifications == wrong_password_work == 1


async def test_a_pending_sign_up_cannot_sign_in(
    sessions: Sessions, registrations: Registrations, directory: FakeAccounts
) -> None:
    """Until the account exists, the credentials do not work."""
    directory.down = True
    address = f"{new_id('usr')}@example.com"
    with pytest.raises(Exception, match="account service"):
        await registrations.register(address, PASSWORD, "Ada")
    with pytest.raises(InvalidCredentials):
        await sessions.login(address, PASSWORD)


async def test_login_rehashes_a_password_hashed_with_old_parameters(
    sessions: Sessions, registrations: Registrations, hasher: FakeHasher, store: InMemoryStore
) -> None:
    """check_needs_rehash on login: the stored hash moves to the current parameters."""
    address, _ = await person(registrations)
    hasher.version = "v2"
    await sessions.login(address, PASSWORD)
    assert store.tables.credentials[address].password_hash.startswith("v2:")


async def test_repeated_failures_lock_the_email_with_a_retry_delay(
    sessions: Sessions, registrations: Registrations
) -> None:
    """After the free failures, even the right password waits for RetryInfo's delay."""
    address, _ = await person(registrations)
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            await sessions.login(address, WRONG)
    with pytest.raises(TooManyAttempts) as caught:
        await sessions.login(address, PASSWORD)
    assert caught.value.retry_after_s == 1.0


async def test_the_lock_expires_by_itself(
    sessions: Sessions, registrations: Registrations, clock: Clock
) -> None:
    """No permanent lock-out: once the delay has passed, the right password works."""
    address, _ = await person(registrations)
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            await sessions.login(address, WRONG)
    clock.advance(1.5)
    assert (await sessions.login(address, PASSWORD)).refresh_token


async def test_a_successful_login_resets_the_emails_counter(
    sessions: Sessions, registrations: Registrations
) -> None:
    """Failures before a success do not count toward the next lock."""
    address, _ = await person(registrations)
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await sessions.login(address, WRONG)
    await sessions.login(address, PASSWORD)
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await sessions.login(address, WRONG)


async def test_failures_from_one_address_throttle_it_across_emails(
    sessions: Sessions, registrations: Registrations
) -> None:
    """Guessing over many emails from one address locks the address."""
    address, _ = await person(registrations)
    for _ in range(6):
        with pytest.raises(InvalidCredentials):
            await sessions.login(f"{new_id('usr')}@example.com", WRONG, "203.0.113.7")
    with pytest.raises(TooManyAttempts):
        await sessions.login(address, PASSWORD, "203.0.113.7")
    assert (await sessions.login(address, PASSWORD, "198.51.100.1")).refresh_token


async def test_refresh_rotates_and_each_token_works_once(
    sessions: Sessions, registrations: Registrations
) -> None:
    """A refresh returns a new refresh token; the old one is used up."""
    address, _ = await person(registrations)
    first = await sessions.login(address, PASSWORD)
    second = await sessions.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert (await sessions.refresh(second.refresh_token)).refresh_token


async def test_a_reused_refresh_token_revokes_its_whole_family(
    sessions: Sessions, registrations: Registrations
) -> None:
    """Presenting a used token ends the session: its newest token stops working too."""
    address, _ = await person(registrations)
    first = await sessions.login(address, PASSWORD)
    second = await sessions.refresh(first.refresh_token)
    with pytest.raises(RefreshTokenReused):
        await sessions.refresh(first.refresh_token)
    with pytest.raises(RefreshTokenInvalid):
        await sessions.refresh(second.refresh_token)


async def test_reuse_leaves_other_sessions_alone(
    sessions: Sessions, registrations: Registrations
) -> None:
    """Only the family of the reused token is revoked, not the person's other devices."""
    address, _ = await person(registrations)
    phone = await sessions.login(address, PASSWORD)
    laptop = await sessions.login(address, PASSWORD)
    await sessions.refresh(phone.refresh_token)
    with pytest.raises(RefreshTokenReused):
        await sessions.refresh(phone.refresh_token)
    assert (await sessions.refresh(laptop.refresh_token)).refresh_token


async def test_an_expired_refresh_token_is_invalid(
    sessions: Sessions, registrations: Registrations, clock: Clock
) -> None:
    """After its lifetime a refresh token buys nothing."""
    address, _ = await person(registrations)
    tokens = await sessions.login(address, PASSWORD)
    clock.advance(31 * 24 * 3600)
    with pytest.raises(RefreshTokenInvalid):
        await sessions.refresh(tokens.refresh_token)


async def test_logout_revokes_the_session(sessions: Sessions, registrations: Registrations) -> None:
    """After Logout the session's refresh token is invalid."""
    address, _ = await person(registrations)
    tokens = await sessions.login(address, PASSWORD)
    await sessions.logout(tokens.refresh_token)
    with pytest.raises(RefreshTokenInvalid):
        await sessions.refresh(tokens.refresh_token)


async def test_logout_with_an_unknown_token_succeeds(sessions: Sessions) -> None:
    """Logout reveals nothing about the token it is given."""
    await sessions.logout("rt_never-issued")


async def test_change_password_ends_every_session_and_starts_a_new_one(
    sessions: Sessions, registrations: Registrations
) -> None:
    """Old refresh tokens die, the new pair works, and only the new password signs in."""
    address, account_id = await person(registrations)
    old = await sessions.login(address, PASSWORD)
    new_password = "an entirely new passphrase"
    fresh = await sessions.change_password(account_id, PASSWORD, new_password)
    with pytest.raises(RefreshTokenInvalid):
        await sessions.refresh(old.refresh_token)
    assert (await sessions.refresh(fresh.refresh_token)).refresh_token
    with pytest.raises(InvalidCredentials):
        await sessions.login(address, PASSWORD)
    assert (await sessions.login(address, new_password)).refresh_token


async def test_change_password_needs_the_current_password(
    sessions: Sessions, registrations: Registrations
) -> None:
    """A wrong current password is INVALID_CREDENTIALS."""
    _, account_id = await person(registrations)
    with pytest.raises(InvalidCredentials):
        await sessions.change_password(account_id, WRONG, "an entirely new passphrase")


async def test_change_password_refuses_the_same_password(
    sessions: Sessions, registrations: Registrations
) -> None:
    """The new password must differ from the current one."""
    _, account_id = await person(registrations)
    with pytest.raises(PasswordUnchanged):
        await sessions.change_password(account_id, PASSWORD, PASSWORD)
