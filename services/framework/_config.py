"""Service settings read from the environment, with secrets that never print themselves."""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["ConfigError", "Secret", "ServiceSettings", "load_settings"]

_MASK = "**********"
_LOG_FORMATS = ("auto", "json", "console")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class Secret:
    """A string that masks itself in repr() and str(), so settings can be logged safely."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the real value; call it only where the value is used, never to log it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """The settings every service has; a service subclasses it to add its own fields."""

    service: str
    host: str = "127.0.0.1"
    port: int
    database_url: Secret
    internal_token: Secret
    grace_period_s: float = 10.0
    log_format: str = "auto"
    log_level: str = "info"
    max_concurrent_rpcs: int = 100
    default_deadline_ms: int = 5000
    # Prometheus metrics over HTTP on this port (0: any free port; -1: off). Read from the
    # environment it defaults to the service's port + 1000 (account: 51061).
    metrics_port: int = -1

    def __post_init__(self) -> None:
        prefix = f"PAYNOW_{self.service.upper()}_"
        if self.log_format not in _LOG_FORMATS:
            raise ConfigError(f"{prefix}LOG_FORMAT: expected one of {_LOG_FORMATS}")
        if self.log_level.lower() not in _LOG_LEVELS:
            raise ConfigError(f"{prefix}LOG_LEVEL: expected one of {_LOG_LEVELS}")
        if self.max_concurrent_rpcs < 1:
            raise ConfigError(f"{prefix}MAX_CONCURRENT_RPCS: must be at least 1")
        if self.default_deadline_ms < 1:
            raise ConfigError(f"{prefix}DEFAULT_DEADLINE_MS: must be at least 1")


S = TypeVar("S", bound=ServiceSettings)


def _to_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_CASTS: dict[Any, tuple[Callable[[str], Any], str]] = {
    str: (str, "a string"),
    int: (int, "an integer"),
    float: (float, "a number"),
    bool: (_to_bool, "a boolean (true/false)"),
    Secret: (Secret, "a string"),
}


def _registry_port(service: str, variable: str) -> int:
    # Imported lazily: the registry reads a TOML file, and settings given entirely by the
    # environment (tests, containers) must not depend on it.
    try:
        from ._registry import load_registry  # noqa: PLC0415

        return load_registry().port(service)
    except Exception as exc:
        raise ConfigError(f"{variable}: not set, and no registry port for {service!r}") from exc


def _default(service: str, name: str, variable: str, environ: Mapping[str, str]) -> Any:
    if name == "port":
        return _registry_port(service, variable)
    if name == "database_url":
        data_dir = environ.get("PAYNOW_DATA_DIR", "./data")
        return f"sqlite+aiosqlite:///{data_dir}/{service}.db"
    if name.endswith("_addr"):
        callee = name.removesuffix("_addr")
        return f"127.0.0.1:{_registry_port(callee, variable)}"
    return dataclasses.MISSING


def load_settings(cls: type[S], service: str, environ: Mapping[str, str] | None = None) -> S:
    """Build `cls` from `PAYNOW_<SERVICE>_<FIELD>` variables (the token from PAYNOW_INTERNAL_TOKEN).

    Raises ConfigError naming the variable when a value is missing, empty or malformed.
    """
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {"service": service}
    for field in dataclasses.fields(cls):
        if field.name == "service":
            continue
        variable = (
            "PAYNOW_INTERNAL_TOKEN"
            if field.name == "internal_token"
            else f"PAYNOW_{service.upper()}_{field.name.upper()}"
        )
        raw = env.get(variable)
        if raw is None and field.name == "metrics_port":
            port = values.get("port")
            port = _registry_port(service, variable) if port is None else int(port)
            raw = str(port + 1000 if port else 0)  # port 0 (tests): any free port
        if raw is None:
            if (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            ):
                continue
            raw = _default(service, field.name, variable, env)
            if raw is dataclasses.MISSING:
                raise ConfigError(f"{variable}: required but not set")
            if not isinstance(raw, str):
                values[field.name] = raw
                continue
        cast, expected = _CASTS.get(hints[field.name], (None, ""))
        if cast is None:
            raise ConfigError(f"{variable}: unsupported setting type {hints[field.name]!r}")
        if hints[field.name] is Secret and not raw:
            raise ConfigError(f"{variable}: must not be empty")
        try:
            values[field.name] = cast(raw)
        except ValueError:
            shown = "<secret>" if hints[field.name] is Secret else repr(raw)
            raise ConfigError(f"{variable}: expected {expected}, got {shown}") from None
    return cls(**values)
