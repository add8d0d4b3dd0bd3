"""Create merchants, API keys, payments, refunds and idempotency records.

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
        "merchants",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("owner_id", sa.String(40), nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("settlement_account_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.Column("creation_key", sa.String(300), nullable=False, unique=True),
    )
    op.create_index("ix_merchants_owner", "merchants", ["owner_id", "create_time"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False, index=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.Column("revoke_time", UtcDateTime),
    )
    op.create_index("ix_api_keys_merchant", "api_keys", ["merchant_id", "create_time"])
    op.create_table(
        "payments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.String(40), sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("settlement_account_id", sa.String(40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("payer_account_id", sa.String(40), nullable=False),
        sa.Column("amount_refunded_minor", sa.BigInteger, nullable=False),
        sa.Column("failure_reason", sa.String(64), nullable=False),
        sa.Column("transfer_id", sa.String(40), nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.Column("expire_time", UtcDateTime, nullable=False),
        sa.Column("update_time", UtcDateTime, nullable=False),
        sa.Column("approve_time", UtcDateTime),
        sa.Column("approval_start_time", UtcDateTime),
        sa.Column("creation_key", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint("amount_minor > 0", name="ck_payments_positive"),
        sa.CheckConstraint(
            "amount_refunded_minor >= 0 AND amount_refunded_minor <= amount_minor",
            name="ck_payments_refund_within_amount",
        ),
    )
    op.create_index(
        "ux_payments_creation_key", "payments", ["merchant_id", "creation_key"], unique=True
    )
    op.create_index("ix_payments_merchant", "payments", ["merchant_id", "create_time"])
    op.create_index("ix_payments_payer", "payments", ["payer_account_id", "create_time"])
    op.create_index("ix_payments_state", "payments", ["state", "expire_time"])
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("payment_id", sa.String(40), sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.CheckConstraint("amount_minor > 0", name="ck_refunds_positive"),
    )
    op.create_index("ux_refunds_key", "refunds", ["payment_id", "idempotency_key"], unique=True)
    create_idempotency_records_v1()


def downgrade() -> None:
    drop_idempotency_records_v1()
    for table in ("refunds", "payments", "api_keys", "merchants"):
        op.drop_table(table)
