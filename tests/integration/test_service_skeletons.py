"""The auth and merchant skeletons: built from their settings, migrated, SERVING."""

from __future__ import annotations

import importlib
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from services.framework import Database, load_settings
from services.framework.testing import serve_in_process


def _settings(service: str, tmp_path: Path) -> Any:
    config = importlib.import_module(f"services.{service}.config")
    settings_class = getattr(config, f"{service.title()}Settings")
    environ = {"PAYNOW_INTERNAL_TOKEN": secrets.token_urlsafe(32), "PAYNOW_DATA_DIR": str(tmp_path)}
    return load_settings(settings_class, service, environ)


@pytest.mark.parametrize("service", ["auth", "merchant"])
async def test_the_skeleton_migrates_its_database_then_serves(service: str, tmp_path: Path) -> None:
    """Started from its own settings, the service records itself in service_metadata."""
    app = importlib.import_module(f"services.{service}.app").build(_settings(service, tmp_path))
    async with serve_in_process(app):
        pass
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/{service}.db", service=service)
    try:
        async with db.transaction(readonly=True) as session:
            rows = (await session.execute(text("SELECT key, value FROM service_metadata"))).all()
    finally:
        await db.dispose()
    assert [tuple(row) for row in rows] == [("service", service)]
