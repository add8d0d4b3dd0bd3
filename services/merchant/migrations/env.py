"""Alembic environment of the merchant service: run by Database.migrate at start-up."""

from services.framework._migrations import run_migration_env

# TODO(#5): pass the service's table metadata once storage.py defines it (autogenerate).
run_migration_env()
