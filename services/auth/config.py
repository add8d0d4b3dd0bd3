"""The auth service's settings, read from PAYNOW_AUTH_* (see ServiceSettings)."""

from __future__ import annotations

import dataclasses

from services.framework import ServiceSettings

__all__ = ["AuthSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthSettings(ServiceSettings):
    """Settings of the auth service: the common ones plus its own."""

    # The account service's gRPC address; defaults to 127.0.0.1:<its registry port>.
    account_addr: str
