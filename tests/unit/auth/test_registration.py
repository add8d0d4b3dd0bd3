"""Registration across two databases, over in-memory fakes: no gRPC, no database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.auth.domain import (
    AccountServiceUnavailable,
    CredentialState,
    EmailAlreadyRegistered,
    Registrations,
)
from services.framework import InvalidArgument, new_id

from .conftest import PASSWORD
from .fakes import Clock, FakeAccounts, InMemoryStore


def email() -> str:
    return f"{new_id('usr')}@example.com"


async def test_register_stores_active_credentials_for_the_new_account(
    registrations: Registrations, store: InMemoryStore
) -> None:
    """A completed sign-up leaves one ACTIVE credential naming the account made."""
    address = email()
    account_id = await registrations.register(address, PASSWORD, "Ada")
    credential = store.tables.credentials[address.casefold()]
    assert (credential.state, credential.account_id) == (CredentialState.ACTIVE, account_id)


async def test_register_uses_the_default_currency_when_none_is_given(
    registrations: Registrations, store: InMemoryStore
) -> None:
    """An empty currency code means the deployment's default."""
    address = email()
    await registrations.register(address, PASSWORD, "Ada")
    assert store.tables.credentials[address].currency_code == "EUR"


async def test_an_email_is_registered_once_ignoring_case(registrations: Registrations) -> None:
    """ADA@… after ada@… is the same person: EMAIL_ALREADY_REGISTERED."""
    address = email()
    await registrations.register(address, PASSWORD, "Ada")
    with pytest.raises(EmailAlreadyRegistered):
        await registrations.register(address.upper(), PASSWORD, "Ada")


async def test_account_down_leaves_a_pending_credential_and_answers_unavailable(
    registrations: Registrations, directory: FakeAccounts, store: InMemoryStore
) -> None:
    """With account unreachable the sign-up stays PENDING, to be completed later."""
    directory.down = True
    address = email()
    with pytest.raises(AccountServiceUnavailable):
        await registrations.register(address, PASSWORD, "Ada")
    assert store.tables.credentials[address].state is CredentialState.PENDING


async def test_a_retry_completes_the_pending_sign_up_with_the_same_registration_id(
    registrations: Registrations, directory: FakeAccounts
) -> None:
    """The retry sends the first attempt's registration id, so account makes one account."""
    directory.down = True
    address = email()
    with pytest.raises(AccountServiceUnavailable):
        await registrations.register(address, PASSWORD, "Ada")
    directory.down = False
    await registrations.register(address, PASSWORD, "Ada Lovelace")
    assert len(set(directory.calls)) == 1
    assert len(directory.by_key) == 1


async def test_a_pending_sign_up_cannot_be_taken_over_with_another_password(
    registrations: Registrations, directory: FakeAccounts
) -> None:
    """Someone else's attempt at a pending email learns only that it is taken."""
    directory.down = True
    address = email()
    with pytest.raises(AccountServiceUnavailable):
        await registrations.register(address, PASSWORD, "Ada")
    directory.down = False
    with pytest.raises(EmailAlreadyRegistered):
        await registrations.register(address, "another long password!", "Mallory")
    assert directory.by_key == {}


async def test_an_email_account_already_holds_removes_the_pending_credential(
    registrations: Registrations, directory: FakeAccounts, store: InMemoryStore
) -> None:
    """EMAIL_ALREADY_EXISTS from account proves nothing was made: the row goes."""
    address = email()
    directory.emails[address] = new_id("acc")
    with pytest.raises(EmailAlreadyRegistered):
        await registrations.register(address, PASSWORD, "Ada")
    assert store.tables.credentials == {}


async def test_a_request_account_refuses_is_invalid_and_leaves_nothing(
    registrations: Registrations, directory: FakeAccounts, store: InMemoryStore
) -> None:
    """An unsupported currency is INVALID_ARGUMENT on currency_code, with no row left."""
    directory.refuse = ("currency_code", "not supported")
    with pytest.raises(InvalidArgument) as caught:
        await registrations.register(email(), PASSWORD, "Ada", "XTS")
    assert caught.value.violations == [("currency_code", "not supported")]
    assert store.tables.credentials == {}


async def test_the_sweep_completes_old_pending_sign_ups_only(
    registrations: Registrations, directory: FakeAccounts, store: InMemoryStore, clock: Clock
) -> None:
    """PENDING rows older than the threshold are completed; younger ones are left alone."""
    directory.down = True
    old, young = email(), email()
    with pytest.raises(AccountServiceUnavailable):
        await registrations.register(old, PASSWORD, "Old")
    clock.advance(120)
    with pytest.raises(AccountServiceUnavailable):
        await registrations.register(young, PASSWORD, "Young")
    directory.down = False
    assert await registrations.sweep(timedelta(seconds=60)) == 1
    assert store.tables.credentials[old].state is CredentialState.ACTIVE
    assert store.tables.credentials[young].state is CredentialState.PENDING


async def test_the_sweep_abandons_a_sign_up_whose_email_account_holds(
    registrations: Registrations, directory: FakeAccounts, store: InMemoryStore, clock: Clock
) -> None:
    """A PENDING row whose email another account took is deleted by the sweep."""
    directory.down = True
    address = email()
    with pytest.raises(AccountServiceUnavailable):
        await registrations.register(address, PASSWORD, "Ada")
    directory.down = False
    directory.emails[address] = new_id("acc")
    clock.advance(120)
    assert await registrations.sweep(timedelta(seconds=60)) == 1
    assert store.tables.credentials == {}


async def test_the_sweep_keeps_a_sign_up_while_account_is_still_down(
    registrations: Registrations, directory: FakeAccounts, store: InMemoryStore, clock: Clock
) -> None:
    """An unreachable account leaves the row PENDING for the next sweep."""
    directory.down = True
    address = email()
    with pytest.raises(AccountServiceUnavailable):
        await registrations.register(address, PASSWORD, "Ada")
    clock.advance(120)
    assert await registrations.sweep(timedelta(seconds=60)) == 0
    assert store.tables.credentials[address].state is CredentialState.PENDING
