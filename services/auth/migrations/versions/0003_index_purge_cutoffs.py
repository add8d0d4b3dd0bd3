"""Index the columns the retention purge selects on: refresh-token expiry, last failure.

Without them each purge batch scans the whole table, and on PostgreSQL a SERIALIZABLE scan
takes a predicate lock on all of it: concurrent Logins and Refreshes would then conflict
with the purge and could be aborted (and retried). Building them blocks writes to the two
tables for as long as the build takes, once, during the upgrade.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_index("ix_refresh_tokens_expire_time", "refresh_tokens", ["expire_time"])
    op.create_index(
        "ix_login_throttles_last_failure_time", "login_throttles", ["last_failure_time"]
    )


def downgrade() -> None:
    op.drop_index("ix_login_throttles_last_failure_time", table_name="login_throttles")
    op.drop_index("ix_refresh_tokens_expire_time", table_name="refresh_tokens")
