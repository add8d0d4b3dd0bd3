"""Alembic environment of the merchant service: run by Database.migrate at start-up."""

from services.framework._migrations import run_migration_env
from services.merchant.storage import metadata

run_migration_env(metadata)
