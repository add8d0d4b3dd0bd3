"""Alembic environment of the account service: run by Database.migrate at start-up."""

from services.account.storage import metadata
from services.framework._migrations import run_migration_env

run_migration_env(metadata)
