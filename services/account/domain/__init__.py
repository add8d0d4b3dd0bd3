"""The account service's domain: accounts, the double-entry ledger and the rules of money.

Nothing here imports gRPC, protobuf or SQLAlchemy: transport and storage depend on this
package, never the reverse, so these rules are tested in milliseconds with in-memory fakes.
"""

from .accounts import Accounts
from .errors import (
    AccountNotActive,
    AccountNotEmpty,
    AccountNotFound,
    BalanceLimitExceeded,
    CurrencyMismatch,
    EmailAlreadyExists,
    EtagMismatch,
    InsufficientFunds,
    TransferNotFound,
    UnsupportedCurrency,
)
from .ledger import Ledger
from .models import (
    MAX_BALANCE_MINOR,
    Account,
    AccountKind,
    AccountState,
    EntryKind,
    LedgerEntry,
    Transfer,
    funding_account_id,
)
from .ports import AccountRepository, AccountUnitOfWork, DuplicateKey, LedgerRepository

__all__ = [
    "MAX_BALANCE_MINOR",
    "Account",
    "AccountKind",
    "AccountNotActive",
    "AccountNotEmpty",
    "AccountNotFound",
    "AccountRepository",
    "AccountState",
    "AccountUnitOfWork",
    "Accounts",
    "BalanceLimitExceeded",
    "CurrencyMismatch",
    "DuplicateKey",
    "EmailAlreadyExists",
    "EntryKind",
    "EtagMismatch",
    "InsufficientFunds",
    "Ledger",
    "LedgerEntry",
    "LedgerRepository",
    "Transfer",
    "TransferNotFound",
    "UnsupportedCurrency",
    "funding_account_id",
]
