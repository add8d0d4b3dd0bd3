"""The account domain's rules, over in-memory fakes: no gRPC, no database."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from services.account.domain import (
    AccountKind,
    AccountNotActive,
    AccountNotEmpty,
    AccountNotFound,
    Accounts,
    CurrencyMismatch,
    EmailAlreadyExists,
    EtagMismatch,
    InsufficientFunds,
    Ledger,
    UnsupportedCurrency,
    funding_account_id,
)
from services.account.domain.accounts import NewAccount
from services.account.domain.ledger import Movement
from services.framework import IdempotencyKeyReused, new_id, page_request

from .fakes import InMemoryStore


class Clock:
    """A clock that ticks one millisecond per reading, so entries have distinct times."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def accounts(store: InMemoryStore) -> Accounts:
    return Accounts(store, currencies={"EUR", "USD"}, clock=Clock())


@pytest.fixture
def ledger(store: InMemoryStore, accounts: Accounts) -> Ledger:
    return Ledger(store, accounts, clock=Clock())


def personal(email: str | None = None, currency: str = "EUR") -> NewAccount:
    return NewAccount(
        kind=AccountKind.PERSONAL,
        email=email or f"{new_id('usr')}@example.com",
        display_name="Ada",
        currency_code=currency,
        owner_id="",
        creation_key=new_id("reg"),
    )


def assert_ledger_balanced(store: InMemoryStore) -> None:
    """Every balance equals its entries' sum, and all balances together sum to zero."""
    sums: dict[str, int] = defaultdict(int)
    for entry in store.tables.entries:
        sums[entry.account_id] += entry.amount_minor
    for account in store.tables.accounts.values():
        assert account.balance_minor == sums[account.id], account.id
    assert sum(a.balance_minor for a in store.tables.accounts.values()) == 0


async def test_personal_account_is_owned_by_itself(accounts: Accounts) -> None:
    """A wallet's owner is the person, whose user id is the wallet's id."""
    account = await accounts.create(personal())
    assert account.owner_id == account.id
    assert account.balance_minor == 0


async def test_create_with_the_same_key_returns_the_same_account(accounts: Accounts) -> None:
    """A retried CreateAccount never makes a second account."""
    request = personal()
    assert (await accounts.create(request)).id == (await accounts.create(request)).id


async def test_create_key_reused_for_other_values_is_refused(accounts: Accounts) -> None:
    """The same key with another email is IDEMPOTENCY_KEY_REUSED."""
    request = personal()
    await accounts.create(request)
    other = NewAccount(**{**request.__dict__, "email": "other@example.com"})
    with pytest.raises(IdempotencyKeyReused):
        await accounts.create(other)


async def test_emails_are_unique_ignoring_case(accounts: Accounts) -> None:
    """Ada@Example.com and ada@example.com are the same person."""
    await accounts.create(personal("Ada@Example.com"))
    with pytest.raises(EmailAlreadyExists):
        await accounts.create(personal("ada@example.COM"))


async def test_unsupported_currency_is_refused(accounts: Accounts) -> None:
    """Only the deployment's currencies can be held."""
    with pytest.raises(UnsupportedCurrency):
        await accounts.create(personal(currency="XXX"))


async def test_another_persons_account_is_not_found(accounts: Accounts) -> None:
    """A foreign account answers like a missing one."""
    ada = await accounts.create(personal())
    bob = await accounts.create(personal())
    with pytest.raises(AccountNotFound):
        await accounts.get(bob.id, ada.id)


async def test_rename_with_a_stale_etag_is_aborted(accounts: Accounts) -> None:
    """Optimistic concurrency: an etag read before a change no longer matches."""
    ada = await accounts.create(personal())
    renamed = await accounts.rename(ada.id, ada.id, "Ada L.", ada.etag)
    assert renamed.display_name == "Ada L."
    assert renamed.etag != ada.etag
    with pytest.raises(EtagMismatch):
        await accounts.rename(ada.id, ada.id, "Ada Lovelace", ada.etag)


async def test_close_is_refused_while_money_remains(accounts: Accounts, ledger: Ledger) -> None:
    """An account with a balance cannot close; with zero it can."""
    ada = await accounts.create(personal())
    await ledger.deposit(ada.id, ada.id, 100, "EUR", "d1")
    with pytest.raises(AccountNotEmpty):
        await accounts.close(ada.id, ada.id, "")
    empty = await accounts.create(personal())
    assert (await accounts.close(empty.id, empty.id, "")).state.value == "CLOSED"


async def test_deposit_credits_once_per_key(
    accounts: Accounts, ledger: Ledger, store: InMemoryStore
) -> None:
    """A retried deposit with the same key moves no more money."""
    ada = await accounts.create(personal())
    first = await ledger.deposit(ada.id, ada.id, 500, "EUR", "top-up-1")
    again = await ledger.deposit(ada.id, ada.id, 500, "EUR", "top-up-1")
    assert first.entry.id == again.entry.id
    assert (await accounts.get(ada.id, ada.id)).balance_minor == 500
    assert store.tables.accounts[funding_account_id("EUR")].balance_minor == -500
    assert_ledger_balanced(store)


async def test_deposit_key_reused_with_another_amount_is_refused(
    accounts: Accounts, ledger: Ledger
) -> None:
    """The same key with another amount is IDEMPOTENCY_KEY_REUSED, and nothing moves."""
    ada = await accounts.create(personal())
    await ledger.deposit(ada.id, ada.id, 500, "EUR", "k")
    with pytest.raises(IdempotencyKeyReused):
        await ledger.deposit(ada.id, ada.id, 501, "EUR", "k")
    assert (await accounts.get(ada.id, ada.id)).balance_minor == 500


async def test_deposit_into_a_foreign_account_is_not_found(
    accounts: Accounts, ledger: Ledger
) -> None:
    """Nobody tops up an account they do not own."""
    ada = await accounts.create(personal())
    bob = await accounts.create(personal())
    with pytest.raises(AccountNotFound):
        await ledger.deposit(bob.id, ada.id, 1, "EUR", "k")


async def funded(accounts: Accounts, ledger: Ledger, amount: int) -> str:
    account = await accounts.create(personal())
    if amount:
        await ledger.deposit(account.id, account.id, amount, "EUR", new_id("dep"))
    return account.id


def move(source: str, target: str, amount: int, key: str | None = None) -> Movement:
    return Movement(source, target, amount, "EUR", "test", "transfer:test", key or new_id("key"))


async def test_transfer_refuses_to_overdraw(accounts: Accounts, ledger: Ledger) -> None:
    """A debit larger than the balance is INSUFFICIENT_FUNDS with the facts attached."""
    source, target = await funded(accounts, ledger, 100), await funded(accounts, ledger, 0)
    with pytest.raises(InsufficientFunds) as caught:
        await ledger.transfer(move(source, target, 101))
    assert caught.value.metadata() == {
        "accountId": source,
        "balanceMinor": "100",
        "requestedMinor": "101",
    }


async def test_transfer_refuses_to_mix_currencies(accounts: Accounts, ledger: Ledger) -> None:
    """Both accounts and the amount share one currency."""
    source = await funded(accounts, ledger, 100)
    dollars = await accounts.create(personal(currency="USD"))
    with pytest.raises(CurrencyMismatch):
        await ledger.transfer(move(source, dollars.id, 10))


async def test_transfer_refuses_a_closed_account(accounts: Accounts, ledger: Ledger) -> None:
    """A closed account moves no money."""
    source = await funded(accounts, ledger, 100)
    closed = await accounts.create(personal())
    await accounts.close(closed.id, closed.id, "")
    with pytest.raises(AccountNotActive):
        await ledger.transfer(move(source, closed.id, 10))


async def test_transfer_retried_with_its_key_moves_money_once(
    accounts: Accounts, ledger: Ledger, store: InMemoryStore
) -> None:
    """The second call returns the first transfer, marked as not created."""
    source, target = await funded(accounts, ledger, 100), await funded(accounts, ledger, 0)
    first = await ledger.transfer(move(source, target, 60, key="pay_1"))
    second = await ledger.transfer(move(source, target, 60, key="pay_1"))
    assert (first.created, second.created) == (True, False)
    assert first.transfer.id == second.transfer.id
    assert store.tables.accounts[target].balance_minor == 60
    assert_ledger_balanced(store)


async def test_concurrent_transfers_never_overdraw(
    accounts: Accounts, ledger: Ledger, store: InMemoryStore
) -> None:
    """50 concurrent debits against a balance covering 10 make exactly 10 succeed."""
    source, target = await funded(accounts, ledger, 1000), await funded(accounts, ledger, 0)
    results = await asyncio.gather(
        *(ledger.transfer(move(source, target, 100)) for _ in range(50)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 10
    assert all(isinstance(r, InsufficientFunds) for r in results if isinstance(r, Exception))
    assert store.tables.accounts[source].balance_minor == 0
    assert_ledger_balanced(store)


async def test_history_is_newest_first_and_paged(accounts: Accounts, ledger: Ledger) -> None:
    """Pages follow each other without gaps or repeats, newest entry first."""
    ada = await accounts.create(personal())
    for amount in range(1, 6):
        await ledger.deposit(ada.id, ada.id, amount, "EUR", f"d{amount}")
    seen: list[int] = []
    token = ""
    while True:
        page = await ledger.history(
            ada.id, ada.id, None, None, page_request(2, token, {"a": ada.id})
        )
        seen += [entry.amount_minor for entry in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert seen == [5, 4, 3, 2, 1]
