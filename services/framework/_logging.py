"""structlog set-up: one JSON line per event on stdout, secrets masked as a last resort."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["REDACTED", "configure_logging", "json_sink", "redact", "register_secret", "scrub"]

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(r"password|token|secret|authorization|api[_-]?key|pepper", re.I)
# Known secret values (the internal token, database passwords) scrubbed from any string:
# a key-name rule cannot catch a token pasted into a message or an exception text.
_secret_values: set[str] = set()
_configured = False
# Where configure_logging sends JSON lines at `info`; None for console rendering, a level
# above info, or before configuration (json_sink()).
_json_sink: TextIO | None = None


def register_secret(value: str) -> None:
    """Mask `value` wherever it appears in a log line; short values are ignored as too noisy."""
    if len(value) >= 8:
        _secret_values.add(value)


def scrub(text: str) -> str:
    """`text` with every registered secret value masked."""
    for secret in _secret_values:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def json_sink() -> TextIO | None:
    """The stream JSON log lines go to when `info` lines are written as JSON, else None.

    For a hot path writing one line per request without structlog's processor chain
    (services/edge/telemetry.py AccessLog): it must write the same shape (`event`, `level`,
    `time` keys) and pass string values through scrub().
    """
    return _json_sink


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask values under secret-like keys and known secret values."""
    for key, value in event_dict.items():
        if _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | dict | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


def configure_logging(
    level: str = "info", fmt: str = "auto", *, stream: TextIO | None = None, force: bool = False
) -> None:
    """Configure structlog once per process (later calls are no-ops unless `force`).

    `fmt` is auto (JSON unless stdout is a terminal), json or console.
    """
    global _configured, _json_sink  # noqa: PLW0603 - structlog's configuration is global too
    if _configured and not force:
        return
    out = stream or sys.stdout
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.StackInfoRenderer(),
            *([] if console else [structlog.processors.format_exc_info]),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        # Not cached: a cached logger keeps the old output and processors, so a later
        # reconfiguration (tests, `force=True`) would silently miss loggers already used.
        cache_logger_on_first_use=False,
    )
    _configured = True
    info = logging.getLevelNamesMapping()[level.upper()] <= logging.INFO
    _json_sink = out if info and not console else None
