"""The ledger's SQL, built once as Core statements so SQLAlchemy's compiled cache serves every
call. Bind names never equal column names (an UPDATE would take those as SET values)."""

from __future__ import annotations

from sqlalchemy import BigInteger, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.db import UTCDateTime
from app.tables import accounts as A
from app.tables import entries as E
from app.tables import grants as G
from app.tables import hold_parts as P
from app.tables import holds as H

user = bindparam("u")
amt = bindparam("amt", type_=BigInteger)
now = bindparam("now", type_=UTCDateTime)
expiry = bindparam("e", type_=UTCDateTime)
hold_id = bindparam("hid")
grant_id = bindparam("gid")


def _earlier(column):
    """next_expiry after tokens land on a grant expiring at :e (never later than the truth)."""
    return case((or_(column.is_(None), column > expiry), expiry), else_=column)


def insert_ignoring(dialect: str, table, *conflict_columns: str):
    """INSERT ... ON CONFLICT DO NOTHING for the engine's dialect (RETURNING gives no row then)."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))


# Accounts
ACCOUNT_STATE = select(A.c.welcomed, A.c.trial_month, A.c.next_expiry).where(A.c.user_id == user)
LOCK_ACCOUNT = ACCOUNT_STATE.with_for_update()
SETTLED = update(A).where(A.c.user_id == user).values(welcomed=True)
SETTLED_MONTH = SETTLED.values(trial_month=bindparam("month"))
# The first statement of a reservation: lock, move the tokens on the totals, and read the lazy
# grant state in one round trip. A reservation that then finds too few usable tokens rolls back.
RESERVE_ACCOUNT = (
    update(A).where(A.c.user_id == user)
    .values(available=A.c.available - amt, held=A.c.held + amt)
    .returning(A.c.available, A.c.held, A.c.welcomed, A.c.trial_month, A.c.next_expiry)
)
GRANT_ACCOUNT = (
    update(A).where(A.c.user_id == user)
    .values(granted=A.c.granted + amt, available=A.c.available + amt)
    .returning(A.c.available, A.c.held)
)
GRANT_ACCOUNT_EXPIRING = GRANT_ACCOUNT.values(next_expiry=_earlier(A.c.next_expiry))
CAPTURE_ACCOUNT = (
    update(A).where(A.c.user_id == user)
    .values(held=A.c.held - amt, captured=A.c.captured + amt)
    .returning(A.c.available, A.c.held, A.c.next_expiry)
)
_back, _lost = bindparam("back", type_=BigInteger), bindparam("lost", type_=BigInteger)
RELEASE_ACCOUNT = (
    update(A).where(A.c.user_id == user)
    .values(available=A.c.available + _back, held=A.c.held - amt, expired=A.c.expired + _lost)
    .returning(A.c.available, A.c.held, A.c.next_expiry)
)
RELEASE_ACCOUNT_EXPIRING = RELEASE_ACCOUNT.values(next_expiry=_earlier(A.c.next_expiry))
SWEEP_ACCOUNT = (
    update(A).where(A.c.user_id == user)
    .values(
        available=A.c.available - amt,
        expired=A.c.expired + amt,
        next_expiry=select(func.min(G.c.expires_at)).where(G.c.user_id == user, G.c.remaining > 0).scalar_subquery(),
    )
    .returning(A.c.available, A.c.held)
)

# Grants
GRANT_BY_REF = select(G).where(G.c.source_ref == bindparam("ref"))
USABLE = select(G.c.id, G.c.kind, G.c.remaining, G.c.valid_from, G.c.expires_at).where(
    G.c.user_id == user, G.c.remaining > 0, G.c.valid_from <= now,
    or_(G.c.expires_at.is_(None), G.c.expires_at > now),
)
LIVE = select(G.c.id, G.c.kind, G.c.amount, G.c.remaining, G.c.held, G.c.valid_from, G.c.expires_at).where(
    G.c.user_id == user, or_(G.c.remaining > 0, G.c.held > 0)
)
DUE = (
    select(G.c.id, G.c.remaining).where(G.c.user_id == user, G.c.remaining > 0, G.c.expires_at <= now)
    .order_by(G.c.expires_at, G.c.id)
)
USERS_WITH_DUE = select(G.c.user_id).where(G.c.remaining > 0, G.c.expires_at <= now).distinct()
_x = bindparam("x", type_=BigInteger)
TAKE = update(G).where(G.c.id == grant_id).values(remaining=G.c.remaining - _x, held=G.c.held + _x)
LAPSE = update(G).where(G.c.id == grant_id).values(remaining=G.c.remaining - _x, expired=G.c.expired + _x)
_r, _a, _l = (bindparam(n, type_=BigInteger) for n in ("r", "a", "l"))
GIVE_BACK = update(G).where(G.c.id == grant_id).values(
    remaining=G.c.remaining + _r, held=G.c.held - _a, expired=G.c.expired + _l
)
# UPDATE ... FROM: both PostgreSQL and SQLite (3.33+) take it, and RETURNING (3.35+).
CAPTURE_GRANTS = (
    update(G).where(G.c.id == P.c.grant_id, P.c.hold_id == hold_id)
    .values(held=G.c.held - P.c.amount, captured=G.c.captured + P.c.amount)
    .returning(G.c.id)
)

# Holds
_HOLD_COLUMNS = (H.c.id, H.c.user_id, H.c.operation_id, H.c.feature, H.c.amount, H.c.parts, H.c.status,
                 H.c.reason, H.c.created_at, H.c.deadline, H.c.finished_at)
FINISH_HOLD = (
    update(H).where(H.c.id == hold_id, H.c.status == "held")
    .values(status=bindparam("st"), reason=bindparam("why"), finished_at=now)
    .returning(*_HOLD_COLUMNS)
)
HOLD = select(*_HOLD_COLUMNS, A.c.available).join(A, A.c.user_id == H.c.user_id).where(H.c.id == hold_id)
HOLD_BY_OPERATION = select(*_HOLD_COLUMNS, A.c.available).join(A, A.c.user_id == H.c.user_id).where(
    H.c.operation_id == bindparam("op")
)
DUE_HOLDS = select(H.c.id).where(H.c.status == "held", H.c.deadline <= now).order_by(H.c.deadline)
PARTS = select(P.c.grant_id, P.c.amount, G.c.expires_at).join(G, G.c.id == P.c.grant_id).where(P.c.hold_id == hold_id)
PART_LAPSED = update(P).where(P.c.hold_id == hold_id, P.c.grant_id == grant_id).values(expired=_l)
INSERT_HOLD = insert(H)
INSERT_PARTS = insert(P)

# Journal
INSERT_ENTRY = insert(E)
ENTRIES = (
    select(E, G.c.kind.label("grant_kind")).outerjoin(G, G.c.id == E.c.grant_id)
    .where(E.c.user_id == user).order_by(E.c.id.desc()).limit(bindparam("limit"))
)
ENTRIES_BEFORE = ENTRIES.where(E.c.id < bindparam("before"))
