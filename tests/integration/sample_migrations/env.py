"""Alembic environment of the storage tests' sample schema (the services' env.py is the same)."""

from services.framework._migrations import run_migration_env

run_migration_env()
