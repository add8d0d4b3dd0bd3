"""deploy/entrypoint.py: the image's one entry point for every service."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from .conftest import DEPLOY, ROOT

ENTRYPOINT = DEPLOY / "entrypoint.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The image's layout: the repository root and generated/ on PYTHONPATH.
    environ = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'generated'}"}
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_no_argument_prints_the_usage() -> None:
    """Without a service name the image explains itself and exits 2."""
    result = _run()
    assert result.returncode == 2
    assert "migrate SERVICE" in result.stderr


def test_an_unknown_service_is_refused_by_name() -> None:
    """A name the registry lacks stops at once, naming it and the known services."""
    result = _run("ledger")
    assert result.returncode != 0
    assert "unknown service 'ledger'" in result.stderr


def test_migrate_creates_the_schema_of_the_named_service(tmp_path: Path) -> None:
    """`migrate account` upgrades account's database to head and exits 0."""
    database = tmp_path / "account.db"
    url = {"PAYNOW_ACCOUNT_DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    result = _run("migrate", "account", env=url)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision


def test_migrate_twice_changes_nothing(tmp_path: Path) -> None:
    """A second `migrate`, as an init container of each replica runs it, is a no-op."""
    database = tmp_path / "account.db"
    url = {"PAYNOW_ACCOUNT_DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    assert _run("migrate", "account", env=url).returncode == 0
    result = _run("migrate", "account", env=url)
    assert result.returncode == 0, result.stderr


def test_migrate_without_a_database_url_names_the_variable() -> None:
    """The init container fails with the missing variable, not a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "PAYNOW_MERCHANT_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "migrate", "merchant"],
        env={**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'generated'}"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "PAYNOW_MERCHANT_DATABASE_URL: required but not set" in result.stderr


def test_healthcheck_finds_the_service_pid_1_runs(tmp_path: Path) -> None:
    """The HEALTHCHECK maps PID 1's `python -m services.merchant` to merchant's entry."""
    sys.path.insert(0, str(DEPLOY))
    try:
        import entrypoint
    finally:
        sys.path.remove(str(DEPLOY))
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/app/.venv/bin/python\0-m\0services.merchant\0")
    assert entrypoint.running_service(cmdline).name == "merchant"
