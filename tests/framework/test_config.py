"""Settings come from PAYNOW_* variables, fail naming the variable, and never print secrets."""

from __future__ import annotations

import dataclasses

import pytest

from services.framework import ConfigError, Secret, ServiceSettings, load_settings

ENV = {
    "PAYNOW_INTERNAL_TOKEN": "internal-token-value-123",
    "PAYNOW_ACCOUNT_PORT": "50999",
    "PAYNOW_ACCOUNT_DATABASE_URL": "postgresql+asyncpg://u:pw-secret@db/account",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class MerchantSettings(ServiceSettings):
    account_addr: str
    fake_payments: bool = False


def test_settings_are_read_from_prefixed_variables() -> None:
    """Each field comes from PAYNOW_<SERVICE>_<FIELD>, cast by its annotation."""
    env = {**ENV, "PAYNOW_ACCOUNT_GRACE_PERIOD_S": "2.5", "PAYNOW_ACCOUNT_MAX_CONCURRENT_RPCS": "7"}
    settings = load_settings(ServiceSettings, "account", env)
    assert (settings.port, settings.grace_period_s, settings.max_concurrent_rpcs) == (50999, 2.5, 7)
    assert settings.internal_token.reveal() == "internal-token-value-123"


def test_a_malformed_value_names_the_variable() -> None:
    """A value that does not cast raises ConfigError naming the variable and the value."""
    with pytest.raises(ConfigError, match=r"^PAYNOW_ACCOUNT_PORT: expected an integer, got 'abc'$"):
        load_settings(ServiceSettings, "account", {**ENV, "PAYNOW_ACCOUNT_PORT": "abc"})


def test_a_missing_internal_token_names_the_variable() -> None:
    """Without PAYNOW_INTERNAL_TOKEN, ConfigError names it."""
    env = {k: v for k, v in ENV.items() if k != "PAYNOW_INTERNAL_TOKEN"}
    with pytest.raises(ConfigError, match="PAYNOW_INTERNAL_TOKEN"):
        load_settings(ServiceSettings, "account", env)


def test_an_invalid_choice_names_the_variable() -> None:
    """A log format outside auto|json|console raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match="PAYNOW_ACCOUNT_LOG_FORMAT"):
        load_settings(ServiceSettings, "account", {**ENV, "PAYNOW_ACCOUNT_LOG_FORMAT": "xml"})


def test_a_malformed_boolean_names_the_variable() -> None:
    """A subclass field typed bool accepts true/false and names the variable otherwise."""
    env = {**ENV, "PAYNOW_ACCOUNT_ACCOUNT_ADDR": "h:1", "PAYNOW_ACCOUNT_FAKE_PAYMENTS": "maybe"}
    with pytest.raises(ConfigError, match="PAYNOW_ACCOUNT_FAKE_PAYMENTS"):
        load_settings(MerchantSettings, "account", env)


def test_database_url_defaults_to_sqlite_in_the_data_dir() -> None:
    """Without a database URL, the service gets SQLite under PAYNOW_DATA_DIR."""
    env = {k: v for k, v in ENV.items() if "DATABASE" not in k} | {"PAYNOW_DATA_DIR": "data/x"}
    settings = load_settings(ServiceSettings, "account", env)
    assert settings.database_url.reveal() == "sqlite+aiosqlite:///data/x/account.db"


def test_callee_addresses_default_to_the_registry_port() -> None:
    """A `<callee>_addr` field defaults to 127.0.0.1 and the callee's registry port."""
    env = {**ENV, "PAYNOW_MERCHANT_PORT": "1"}
    settings = load_settings(MerchantSettings, "merchant", env)
    assert settings.account_addr == "127.0.0.1:50061"


def test_secret_repr_is_masked() -> None:
    """repr() and str() of a Secret never show the value; reveal() does."""
    secret = Secret("hunter2-password")
    assert repr(secret) == str(secret) == "Secret('**********')"
    assert secret.reveal() == "hunter2-password"


def test_settings_repr_hides_secrets() -> None:
    """Printing settings shows neither the internal token nor the database password."""
    text = repr(load_settings(ServiceSettings, "account", ENV))
    assert "internal-token-value-123" not in text
    assert "pw-secret" not in text
