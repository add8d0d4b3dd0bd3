"""The account service's settings, read from PAYNOW_ACCOUNT_* (see ServiceSettings)."""

from __future__ import annotations

import dataclasses

from services.framework import ConfigError, ServiceSettings

__all__ = ["AccountSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccountSettings(ServiceSettings):
    """Settings of the account service: the common ones plus its own."""

    # PAYNOW_ACCOUNT_CURRENCIES: the ISO 4217 codes accounts may hold, comma-separated.
    currencies: str = "EUR,USD,GBP,CHF"

    def __post_init__(self) -> None:
        super().__post_init__()
        codes = self.currency_codes
        if not codes or any(len(c) != 3 or not c.isalpha() or not c.isupper() for c in codes):
            raise ConfigError(
                "PAYNOW_ACCOUNT_CURRENCIES: expected comma-separated ISO 4217 codes like EUR,USD"
            )

    @property
    def currency_codes(self) -> frozenset[str]:
        return frozenset(code.strip() for code in self.currencies.split(",") if code.strip())
