"""Create events, which references counters, so a second revision builds on the first.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("counter", sa.String(64), sa.ForeignKey("counters.name"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("events")
