"""Alembic environment of the auth service: run by Database.migrate at start-up."""

from services.auth.storage import metadata
from services.framework._migrations import run_migration_env

run_migration_env(metadata)
