"""Every table of the service, in one SQLAlchemy Core MetaData (migrations mirror it by hand).

Ledger shape: an *account* per user carries running totals and lazy-grant state; *grants* are
where tokens come from and each keeps ``amount = remaining + held + captured + expired``; a *hold*
sets tokens aside for one operation, drawn from grants through *hold_parts*; *ledger_entries* is
the append-only journal, one row per change, with the change to each bucket.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from app.db import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

GRANT_KINDS = ("welcome_gift", "monthly_trial", "package", "pay_as_you_go", "adjustment", "refund")
HOLD_STATUSES = ("held", "captured", "released")
ENTRY_KINDS = ("grant", "reserve", "capture", "release", "expire")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _tokens(name: str, **kw) -> Column:
    return Column(name, BigInteger, nullable=False, server_default=text("0"), **kw)


accounts = Table(
    "ledger_accounts",
    metadata,
    Column("user_id", String(128), primary_key=True),
    # Running totals over the user's grants; the row is also the user's lock.
    # available may dip below zero inside a reserve transaction that then rolls back.
    _tokens("granted"),
    _tokens("available"),
    _tokens("held"),
    _tokens("captured"),
    _tokens("expired"),
    Column("welcomed", Boolean, nullable=False, server_default=text("false")),
    Column("trial_month", String(7)),  # YYYY-MM of the last monthly trial granted
    # Earliest expiry among grants with tokens remaining (never later than the truth).
    Column("next_expiry", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("granted = available + held + captured + expired", name="conserved"),
    CheckConstraint("held >= 0 AND captured >= 0 AND expired >= 0", name="nonnegative"),
)

grants = Table(
    "ledger_grants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(128), ForeignKey(accounts.c.user_id), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    _tokens("remaining"),
    _tokens("held"),
    _tokens("captured"),
    _tokens("expired"),
    Column("source_ref", String(255), nullable=False, unique=True),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("note", Text),
    Column("actor", String(128)),
    CheckConstraint(_one_of("kind", GRANT_KINDS), name="kind"),
    CheckConstraint("amount > 0", name="positive"),
    CheckConstraint("remaining >= 0 AND held >= 0 AND captured >= 0 AND expired >= 0", name="nonnegative"),
    CheckConstraint("amount = remaining + held + captured + expired", name="conserved"),
)

holds = Table(
    "ledger_holds",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(128), ForeignKey(accounts.c.user_id), nullable=False, index=True),
    Column("operation_id", String(32), nullable=False, unique=True),  # one hold per operation
    Column("feature", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("parts", SmallInteger, nullable=False),  # how many grants it draws on
    Column("status", String(16), nullable=False),
    Column("reason", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    CheckConstraint(_one_of("status", HOLD_STATUSES), name="status"),
    CheckConstraint("amount > 0 AND parts > 0", name="positive"),
    Index(None, "status", "deadline"),
)

hold_parts = Table(
    "ledger_hold_parts",
    metadata,
    Column("hold_id", String(32), ForeignKey(holds.c.id), nullable=False),
    Column("grant_id", String(32), ForeignKey(grants.c.id), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    _tokens("expired"),  # of amount, what a release sent to expired (its grant had lapsed)
    PrimaryKeyConstraint("hold_id", "grant_id"),
    CheckConstraint("amount > 0 AND expired >= 0 AND expired <= amount", name="bounds"),
)

entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("user_id", String(128), ForeignKey(accounts.c.user_id), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    # Changes to the user's buckets; amount is the change to the spendable balance.
    Column("amount", BigInteger, nullable=False),
    _tokens("held_delta"),
    _tokens("captured_delta"),
    _tokens("expired_delta"),
    Column("balance_after", BigInteger, nullable=False),
    Column("held_after", BigInteger, nullable=False),
    Column("grant_id", String(32), ForeignKey(grants.c.id)),
    Column("hold_id", String(32), ForeignKey(holds.c.id)),
    Column("operation_id", String(32)),
    Column("feature", String(64)),
    Column("note", Text),
    Column("actor", String(128)),
    CheckConstraint(_one_of("kind", ENTRY_KINDS), name="kind"),
    Index(None, "user_id", "id"),
)

operations = Table(
    "operations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(128), nullable=False, index=True),
    Column("feature", String(64), nullable=False),
    Column("runner", String(64), nullable=False),
    Column("model", String(64)),
    Column("options", JSON, nullable=False, default=dict, server_default=text("'{}'")),
    Column("status", String(16), nullable=False),  # pending|running|succeeded|failed|expired
    Column("error_code", String(64)),
    Column("error_detail", Text),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    Column("tokens_held", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("tokens_charged", BigInteger, nullable=False, default=0, server_default=text("0")),
    Column("hold_id", String(32)),
    Column("input_key", String(512)),
    Column("result_key", String(512)),
    Column("result_content_type", String(128)),
    Column("result_meta", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("deadline", UTCDateTime),
    Column("vendor", String(64)),  # the partner running it, for vendor-routed features
    Column("vendor_task_id", String(128)),
    UniqueConstraint("user_id", "idempotency_key"),
    Index(None, "user_id", "created_at"),
    Index(None, "created_at"),  # retention walks operations by age
    Index(None, "status", "deadline"),  # the reaper and the vendor poller look up active ones
)

# Signed callbacks already processed (vendors, billing): a repeated webhook-id is acknowledged
# and ignored, so a callback delivered twice acts once.
webhook_receipts = Table(
    "webhook_receipts",
    metadata,
    Column("source", String(64), nullable=False),
    Column("webhook_id", String(255), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("source", "webhook_id"),
)

# Token packages bought on the phone bill (app/billing, docs/billing.md). An order snapshots its
# package, so a later catalogue change never rewrites what a user bought.
ORDER_STATUSES = ("pending", "paid", "failed", "cancelled", "refunding", "refunded")
SUBSCRIPTION_STATUSES = ("pending", "active", "cancelled", "lapsed")

orders = Table(
    "billing_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("package_id", String(64), nullable=False),
    Column("package_name", String(200), nullable=False),
    Column("validity", String(16), nullable=False),  # one_off | monthly
    Column("price_fen", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("valid_days", Integer),  # one_off: days the tokens last from payment
    Column("status", String(16), nullable=False),
    Column("idempotency_key", String(255)),  # the buyer's; null on renewals
    Column("subscription_id", String(32)),  # monthly packages
    Column("period", String(7)),  # YYYY-MM: the carrier month a monthly order pays for
    Column("charge_id", String(128)),  # billing's reference, once it took the charge
    Column("grant_id", String(32)),
    Column("expires_at", UTCDateTime),  # when the granted tokens expire
    Column("failure", Text),
    Column("refunded_tokens", BigInteger),
    Column("refunded_fen", BigInteger),
    Column("refund_id", String(128)),
    Column("refunded_by", String(128)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("paid_at", UTCDateTime),
    Column("finished_at", UTCDateTime),  # failed, cancelled or refunded
    CheckConstraint(_one_of("status", ORDER_STATUSES), name="status"),
    CheckConstraint("price_fen >= 0 AND tokens > 0", name="positive"),
    UniqueConstraint("user_id", "idempotency_key"),
    UniqueConstraint("subscription_id", "period"),  # one order per month, whichever replica makes it
    Index(None, "user_id", "created_at"),
    Index(None, "status"),
)

subscriptions = Table(
    "billing_subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(128), nullable=False, index=True),
    Column("package_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_period", String(7), nullable=False),  # the latest month an order was made for
    Column("created_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    CheckConstraint(_one_of("status", SUBSCRIPTION_STATUSES), name="status"),
    Index(None, "status", "last_period"),
)

# Users QA made for testing (app/http/qa.py): only these may be acted as with the QA credential and
# the X-Test-User header, and only these can be topped up or reset from the QA console.
test_users = Table(
    "test_users",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
