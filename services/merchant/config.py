"""The merchant service's settings, read from PAYNOW_MERCHANT_* (see ServiceSettings)."""

from __future__ import annotations

import dataclasses

from services.framework import ConfigError, Secret, ServiceSettings

__all__ = ["MerchantSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MerchantSettings(ServiceSettings):
    """Settings of the merchant service: the common ones plus its own."""

    # The account service's gRPC address; defaults to 127.0.0.1:<its registry port>.
    account_addr: str
    # PAYNOW_MERCHANT_API_KEY_PEPPER: the HMAC key API keys are hashed under (at least 16
    # characters). Unset: a development pepper kept in <PAYNOW_DATA_DIR>/secrets/ is used.
    api_key_pepper: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    # PAYNOW_MERCHANT_API_KEY_PEPPER_PREVIOUS: during a rotation, the pepper being replaced;
    # keys hashed under it keep verifying until they are reissued (docs/operations.md).
    api_key_pepper_previous: Secret = dataclasses.field(default_factory=lambda: Secret(""))
    # How long a payment waits for approval before it expires.
    payment_ttl_s: int = 900
    # How often WatchPayment re-reads the payment.
    watch_interval_ms: int = 500
    # How often recovery settles interrupted approvals/refunds and expires payments.
    recovery_interval_s: float = 30.0
    # An approval or refund older than this is no longer in flight (longer than any deadline).
    recovery_stale_after_s: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.api_key_pepper and len(self.api_key_pepper.reveal()) < 16:
            raise ConfigError("PAYNOW_MERCHANT_API_KEY_PEPPER: must be at least 16 characters")
        if self.payment_ttl_s < 1:
            raise ConfigError("PAYNOW_MERCHANT_PAYMENT_TTL_S: must be at least 1")
        if self.watch_interval_ms < 10:
            raise ConfigError("PAYNOW_MERCHANT_WATCH_INTERVAL_MS: must be at least 10")
