"""Alembic operations for the tables every service's database has, for its migrations.

Each function is a frozen version: migrations already applied call it, so its DDL must
never change. A new shape of one of these tables is a new function (`..._v2`) called from a
new revision, never an edit here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ._sql_types import UtcDateTime

__all__ = [
    "create_idempotency_records_v1",
    "create_service_metadata_v1",
    "drop_idempotency_records_v1",
    "drop_service_metadata_v1",
]


def create_service_metadata_v1(service: str) -> None:
    """`service_metadata`: key/value facts a service keeps about its own database (the first
    revision exists so every database starts at a known, versioned schema)."""
    table = op.create_table(
        "service_metadata",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.bulk_insert(table, [{"key": "service", "value": service}])


def drop_service_metadata_v1() -> None:
    op.drop_table("service_metadata")


def create_idempotency_records_v1() -> None:
    """`idempotency_records`: the framework's idempotency-key store (see _idempotency.py)."""
    op.create_table(
        "idempotency_records",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("response", sa.LargeBinary),
        sa.Column("lease_until", UtcDateTime, nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
    )
    op.create_index("ix_idempotency_records_create_time", "idempotency_records", ["create_time"])


def drop_idempotency_records_v1() -> None:
    op.drop_table("idempotency_records")
