"""The redaction processor masks secrets by key name and by known value."""

from __future__ import annotations

import io
import json

import structlog

from services.framework import configure_logging, register_secret
from services.framework._logging import REDACTED, redact


def test_secret_like_keys_are_masked() -> None:
    """Values under password/token/secret/authorization/api_key/pepper keys are masked."""
    keys = ["password", "refresh_token", "client_secret", "Authorization", "api_key", "pepper"]
    event = redact(None, "info", {key: "value" for key in keys} | {"account_id": "acc_1"})
    assert event == {key: REDACTED for key in keys} | {"account_id": "acc_1"}


def test_nested_secret_keys_are_masked() -> None:
    """Secret-like keys inside nested dicts are masked too."""
    event = redact(None, "info", {"headers": {"authorization": "Bearer x", "accept": "a"}})
    assert event == {"headers": {"authorization": REDACTED, "accept": "a"}}


def test_registered_secret_values_are_scrubbed_from_text() -> None:
    """A registered secret value is masked wherever it appears in a string."""
    register_secret("s3cr3t-internal-value")
    event = redact(None, "info", {"event": "failed with s3cr3t-internal-value inside"})
    assert event == {"event": f"failed with {REDACTED} inside"}


def test_log_lines_are_json_with_bound_context() -> None:
    """Configured for JSON, a line carries contextvars and is masked before rendering."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out, force=True)
    try:
        with structlog.contextvars.bound_contextvars(request_id="req-9"):
            structlog.get_logger().info("login_attempted", password="hunter2hunter2")
    finally:
        configure_logging(force=True)
    line = json.loads(out.getvalue())
    assert (line["event"], line["request_id"], line["password"]) == (
        "login_attempted",
        "req-9",
        REDACTED,
    )
