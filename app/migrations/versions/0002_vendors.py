"""Vendor-routed operations and callback receipts; indexes for retention and the reaper.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("vendor", sa.String(64)))
        batch.add_column(sa.Column("vendor_task_id", sa.String(128)))
    op.create_index("ix_operations_created_at", "operations", ["created_at"])
    op.create_index("ix_operations_status_deadline", "operations", ["status", "deadline"])
    op.create_table(
        "webhook_receipts",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.String(255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "webhook_id", name="pk_webhook_receipts"),
    )


def downgrade() -> None:
    op.drop_table("webhook_receipts")
    op.drop_index("ix_operations_status_deadline", "operations")
    op.drop_index("ix_operations_created_at", "operations")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("vendor_task_id")
        batch.drop_column("vendor")
