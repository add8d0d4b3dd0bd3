"""Development secrets kept in the data directory, so `make run` needs no set-up.

A production deployment sets every secret in the environment (a Kubernetes Secret). Left
unset, a service falls back to a random value generated once and kept in
`<PAYNOW_DATA_DIR>/secrets/<name>` (mode 0600), so it survives restarts: API keys and
tokens issued yesterday keep working. The fallback is logged, so nobody ships it unawares.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import structlog

from ._config import Secret

__all__ = ["local_secret"]

_log = structlog.get_logger("paynow.config")


def local_secret(name: str, environ: Mapping[str, str] | None = None) -> Secret:
    """Read the development secret `name`, creating it on first use; never logs its value."""
    env = os.environ if environ is None else environ
    directory = Path(env.get("PAYNOW_DATA_DIR", "./data")) / "secrets"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / name
    try:
        # O_EXCL: two processes starting at once must not both write a different value.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    value = path.read_text().strip()
    _log.warning("development_secret_in_use", secret=name, path=str(path))
    return Secret(value)
