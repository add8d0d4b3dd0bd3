"""Create accounts, transfers, ledger entries and idempotency records.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from services.framework import UtcDateTime
from services.framework.migration_ops import (
    create_idempotency_records_v1,
    drop_idempotency_records_v1,
)

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("balance_minor", sa.BigInteger, nullable=False),
        sa.Column("owner_id", sa.String(40), nullable=False, index=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("email_key", sa.String(254), unique=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("creation_key", sa.String(255), unique=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.Column("update_time", UtcDateTime, nullable=False),
        sa.CheckConstraint(
            "balance_minor >= 0 OR kind = 'EXTERNAL_FUNDING'", name="ck_accounts_not_overdrawn"
        ),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("from_account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("to_account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("memo", sa.String(200), nullable=False),
        sa.Column("idempotency_scope", sa.String(80), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.CheckConstraint("amount_minor > 0", name="ck_transfers_positive"),
        sa.CheckConstraint("from_account_id <> to_account_id", name="ck_transfers_two_accounts"),
    )
    op.create_index(
        "ux_transfers_idempotency",
        "transfers",
        ["idempotency_scope", "idempotency_key"],
        unique=True,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("transfer_id", sa.String(40), sa.ForeignKey("transfers.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("balance_after_minor", sa.BigInteger, nullable=False),
        sa.Column("counterparty_account_id", sa.String(40), nullable=False),
        sa.Column("memo", sa.String(200), nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.CheckConstraint("amount_minor <> 0", name="ck_ledger_entries_nonzero"),
    )
    op.create_index(
        "ix_ledger_entries_account_time", "ledger_entries", ["account_id", "create_time", "id"]
    )
    create_idempotency_records_v1()


def downgrade() -> None:
    drop_idempotency_records_v1()
    op.drop_table("ledger_entries")
    op.drop_table("transfers")
    op.drop_table("accounts")
