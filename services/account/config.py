"""The account service's settings, read from PAYNOW_ACCOUNT_* (see ServiceSettings)."""

from __future__ import annotations

import dataclasses

from services.framework import ServiceSettings

__all__ = ["AccountSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccountSettings(ServiceSettings):
    """Settings of the account service: the common ones plus its own."""

    # No settings of its own yet: only the common ones (port, database_url, …).
