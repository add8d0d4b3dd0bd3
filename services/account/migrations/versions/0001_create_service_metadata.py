"""Create service_metadata: facts about this database that outlive a release.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    # Key/value facts the service keeps about its own data (e.g. when it was created); the
    # first revision exists so every database starts at a known, versioned schema.
    table = op.create_table(
        "service_metadata",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.bulk_insert(table, [{"key": "service", "value": "account"}])


def downgrade() -> None:
    op.drop_table("service_metadata")
