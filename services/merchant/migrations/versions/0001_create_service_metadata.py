"""Create service_metadata: facts about this database that outlive a release.

Revision ID: 0001
Revises:
"""

from services.framework.migration_ops import create_service_metadata_v1, drop_service_metadata_v1

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_service_metadata_v1("merchant")


def downgrade() -> None:
    drop_service_metadata_v1()
