"""Create credentials, token families, refresh tokens and login throttles.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.framework import UtcDateTime

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("email_key", sa.String(254), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("registration_id", sa.String(40), nullable=False, unique=True),
        sa.Column("account_id", sa.String(40), unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.Column("update_time", UtcDateTime, nullable=False),
    )
    # The sweep's query: PENDING rows, oldest first.
    op.create_index("ix_credentials_state_create_time", "credentials", ["state", "create_time"])
    op.create_table(
        "token_families",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.Column("revoke_time", UtcDateTime),
    )
    op.create_index("ix_token_families_account_id", "token_families", ["account_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(40), sa.ForeignKey("token_families.id"), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.Column("expire_time", UtcDateTime, nullable=False),
        sa.Column("used_time", UtcDateTime),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_time", UtcDateTime, nullable=False),
        sa.Column("locked_until", UtcDateTime),
    )


def downgrade() -> None:
    op.drop_table("login_throttles")
    op.drop_table("refresh_tokens")
    op.drop_table("token_families")
    op.drop_table("credentials")
