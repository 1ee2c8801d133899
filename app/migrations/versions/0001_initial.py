"""Initial schema: the token ledger and operations (mirrors app/tables.py, written by hand).

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GRANT_KINDS = "'welcome_gift', 'monthly_trial', 'package', 'pay_as_you_go', 'adjustment', 'refund'"


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tokens(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("user_id", sa.String(128), nullable=False),
        _tokens("granted"),
        _tokens("available"),
        _tokens("held"),
        _tokens("captured"),
        _tokens("expired"),
        sa.Column("welcomed", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("trial_month", sa.String(7)),
        _ts("next_expiry"),
        _ts("created_at", nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_ledger_accounts"),
        sa.CheckConstraint("granted = available + held + captured + expired", name="ck_ledger_accounts_conserved"),
        sa.CheckConstraint("held >= 0 AND captured >= 0 AND expired >= 0", name="ck_ledger_accounts_nonnegative"),
    )

    op.create_table(
        "ledger_grants",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        _tokens("remaining"),
        _tokens("held"),
        _tokens("captured"),
        _tokens("expired"),
        sa.Column("source_ref", sa.String(255), nullable=False),
        _ts("valid_from", nullable=False),
        _ts("expires_at"),
        _ts("created_at", nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("actor", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_grants"),
        sa.ForeignKeyConstraint(["user_id"], ["ledger_accounts.user_id"], name="fk_ledger_grants_user_id_ledger_accounts"),
        sa.UniqueConstraint("source_ref", name="uq_ledger_grants_source_ref"),
        sa.CheckConstraint(f"kind IN ({GRANT_KINDS})", name="ck_ledger_grants_kind"),
        sa.CheckConstraint("amount > 0", name="ck_ledger_grants_positive"),
        sa.CheckConstraint("remaining >= 0 AND held >= 0 AND captured >= 0 AND expired >= 0", name="ck_ledger_grants_nonnegative"),
        sa.CheckConstraint("amount = remaining + held + captured + expired", name="ck_ledger_grants_conserved"),
    )
    op.create_index("ix_ledger_grants_user_id", "ledger_grants", ["user_id"])
    op.create_index("ix_ledger_grants_expires_at", "ledger_grants", ["expires_at"])

    op.create_table(
        "ledger_holds",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("operation_id", sa.String(32), nullable=False),
        sa.Column("feature", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("parts", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64)),
        _ts("created_at", nullable=False),
        _ts("deadline", nullable=False),
        _ts("finished_at"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_holds"),
        sa.ForeignKeyConstraint(["user_id"], ["ledger_accounts.user_id"], name="fk_ledger_holds_user_id_ledger_accounts"),
        sa.UniqueConstraint("operation_id", name="uq_ledger_holds_operation_id"),
        sa.CheckConstraint("status IN ('held', 'captured', 'released')", name="ck_ledger_holds_status"),
        sa.CheckConstraint("amount > 0 AND parts > 0", name="ck_ledger_holds_positive"),
    )
    op.create_index("ix_ledger_holds_user_id", "ledger_holds", ["user_id"])
    op.create_index("ix_ledger_holds_status_deadline", "ledger_holds", ["status", "deadline"])

    op.create_table(
        "ledger_hold_parts",
        sa.Column("hold_id", sa.String(32), nullable=False),
        sa.Column("grant_id", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        _tokens("expired"),
        sa.PrimaryKeyConstraint("hold_id", "grant_id", name="pk_ledger_hold_parts"),
        sa.ForeignKeyConstraint(["hold_id"], ["ledger_holds.id"], name="fk_ledger_hold_parts_hold_id_ledger_holds"),
        sa.ForeignKeyConstraint(["grant_id"], ["ledger_grants.id"], name="fk_ledger_hold_parts_grant_id_ledger_grants"),
        sa.CheckConstraint("amount > 0 AND expired >= 0 AND expired <= amount", name="ck_ledger_hold_parts_bounds"),
    )
    op.create_index("ix_ledger_hold_parts_grant_id", "ledger_hold_parts", ["grant_id"])

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        _ts("at", nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        _tokens("held_delta"),
        _tokens("captured_delta"),
        _tokens("expired_delta"),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("held_after", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.String(32)),
        sa.Column("hold_id", sa.String(32)),
        sa.Column("operation_id", sa.String(32)),
        sa.Column("feature", sa.String(64)),
        sa.Column("note", sa.Text()),
        sa.Column("actor", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.ForeignKeyConstraint(["user_id"], ["ledger_accounts.user_id"], name="fk_ledger_entries_user_id_ledger_accounts"),
        sa.ForeignKeyConstraint(["grant_id"], ["ledger_grants.id"], name="fk_ledger_entries_grant_id_ledger_grants"),
        sa.ForeignKeyConstraint(["hold_id"], ["ledger_holds.id"], name="fk_ledger_entries_hold_id_ledger_holds"),
        sa.CheckConstraint("kind IN ('grant', 'reserve', 'capture', 'release', 'expire')", name="ck_ledger_entries_kind"),
    )
    op.create_index("ix_ledger_entries_user_id_id", "ledger_entries", ["user_id", "id"])

    op.create_table(
        "operations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("feature", sa.String(64), nullable=False),
        sa.Column("runner", sa.String(64), nullable=False),
        sa.Column("model", sa.String(64)),
        sa.Column("options", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_detail", sa.Text()),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("tokens_held", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("tokens_charged", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("hold_id", sa.String(32)),
        sa.Column("input_key", sa.String(512)),
        sa.Column("result_key", sa.String(512)),
        sa.Column("result_content_type", sa.String(128)),
        sa.Column("result_meta", sa.JSON()),
        _ts("created_at", nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        _ts("deadline"),
        sa.PrimaryKeyConstraint("id", name="pk_operations"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_operations_user_id_idempotency_key"),
    )
    op.create_index("ix_operations_user_id", "operations", ["user_id"])
    op.create_index("ix_operations_user_id_created_at", "operations", ["user_id", "created_at"])


def downgrade() -> None:
    for table in ("operations", "ledger_entries", "ledger_hold_parts", "ledger_holds", "ledger_grants", "ledger_accounts"):
        op.drop_table(table)
