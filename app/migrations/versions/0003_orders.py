"""Token packages bought on the phone bill: orders and monthly subscriptions (mirrors app/tables.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "billing_orders",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("package_id", sa.String(64), nullable=False),
        sa.Column("package_name", sa.String(200), nullable=False),
        sa.Column("validity", sa.String(16), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("valid_days", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("subscription_id", sa.String(32)),
        sa.Column("period", sa.String(7)),
        sa.Column("charge_id", sa.String(128)),
        sa.Column("grant_id", sa.String(32)),
        _ts("expires_at"),
        sa.Column("failure", sa.Text()),
        sa.Column("refunded_tokens", sa.BigInteger()),
        sa.Column("refunded_fen", sa.BigInteger()),
        sa.Column("refund_id", sa.String(128)),
        sa.Column("refunded_by", sa.String(128)),
        _ts("created_at", nullable=False),
        _ts("paid_at"),
        _ts("finished_at"),
        sa.PrimaryKeyConstraint("id", name="pk_billing_orders"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_billing_orders_user_id_idempotency_key"),
        sa.UniqueConstraint("subscription_id", "period", name="uq_billing_orders_subscription_id_period"),
        sa.CheckConstraint("status IN ('pending', 'paid', 'failed', 'cancelled', 'refunding', 'refunded')",
                           name="ck_billing_orders_status"),
        sa.CheckConstraint("price_fen >= 0 AND tokens > 0", name="ck_billing_orders_positive"),
    )
    op.create_index("ix_billing_orders_user_id_created_at", "billing_orders", ["user_id", "created_at"])
    op.create_index("ix_billing_orders_status", "billing_orders", ["status"])

    op.create_table(
        "billing_subscriptions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("package_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_period", sa.String(7), nullable=False),
        _ts("created_at", nullable=False),
        _ts("ended_at"),
        sa.PrimaryKeyConstraint("id", name="pk_billing_subscriptions"),
        sa.CheckConstraint("status IN ('pending', 'active', 'cancelled', 'lapsed')",
                           name="ck_billing_subscriptions_status"),
    )
    op.create_index("ix_billing_subscriptions_user_id", "billing_subscriptions", ["user_id"])
    op.create_index("ix_billing_subscriptions_status_last_period", "billing_subscriptions",
                    ["status", "last_period"])


def downgrade() -> None:
    op.drop_table("billing_subscriptions")
    op.drop_table("billing_orders")
