"""The token ledger: grants, holds, captures, releases, expiry, and the journal of each change.

Every transaction that moves tokens holds the user's account row (an UPDATE or ``SELECT ...
FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) before it reads grants, so two
reservations of one user can never both spend the same tokens. Lock order is always
hold -> account -> grants. Transaction bodies are plain functions over a sync ``Connection``
(see app.db.run_write); on PostgreSQL the two hot ones, reserve and capture, run as stored
functions instead (app.ledger.stored). The clock is injected: nothing here reads the wall clock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import execute, run_read, run_write
from app.errors import InsufficientTokens, InvalidOption, NotFound
from app.ledger import statements as q
from app.ledger import stored
from app.ledger.errors import HoldNotActive, LedgerInvariantBroken, SourceRefReused
from app.ledger.models import (
    BalanceView,
    EntryView,
    GrantBalance,
    GrantView,
    HoldView,
    QuotePart,
    QuoteView,
)
from app.ledger.policy import GRANT_KINDS, carrier_month, month_label, plan, spend_key, usable
from app.ledger.text import describe
from app.tables import entries as E
from app.tables import grants as G


REVOKED = "revoked: "  # how revoke_grant notes its journal entry


class _Unsettled(Exception):
    """The account is missing or owes a lazy grant or expiry; settle it first, then retry."""


class _HoldExists(IntegrityError):
    """The operation already has a hold: ledger_reserve_many's answer where the Python body
    meets the unique index on holds.operation_id, and handled the same way."""

    def __init__(self, operation_id: str):
        super().__init__("ledger_reserve_many", None, Exception(f"operation {operation_id} already has a hold"))


def _new_id() -> str:
    return uuid.uuid4().hex


class Ledger:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime], welcome_gift_tokens: int = 500_000,
                 monthly_trial_tokens: int = 0, timezone: str = "Asia/Shanghai",
                 feature_titles: dict[str, str] | None = None, stored_functions: bool | None = None):
        self._engine = engine
        self._clock = clock
        self._gift = welcome_gift_tokens
        self._trial = monthly_trial_tokens
        self._tz = ZoneInfo(timezone)
        self._titles = dict(feature_titles or {})
        dialect = engine.dialect.name
        self._new_account = q.insert_ignoring(dialect, q.A, "user_id")
        self._insert_grant = q.insert_ignoring(dialect, G, "source_ref").returning(G.c.id)
        # PostgreSQL runs reserve and capture as stored functions unless told not to (a baseline
        # for bench/ledger.py); SQLite has none.
        self._stored = stored.supported(engine) if stored_functions is None else stored_functions
        if self._stored:
            self._reserve_batch = stored.Batcher(engine, stored.RESERVE, stored.RESERVE_FIELDS, ("month",))
            self._capture_batch = stored.Batcher(engine, stored.CAPTURE, stored.CAPTURE_FIELDS)

    # Lazy grants ------------------------------------------------------------------------------

    async def ensure_user(self, user_id: str) -> None:
        """Grant the welcome gift (once ever) and this month's trial (once per carrier month),
        and expire what is due. One read when there is nothing to do."""
        await self._ensure(user_id, self._clock())

    async def _ensure(self, user_id: str, now: datetime) -> None:
        state = await run_read(self._engine, lambda c: execute(c, q.ACCOUNT_STATE, {"u": user_id}).first())
        if state is None or self._unsettled(state, now):
            await run_write(self._engine, self._settle, user_id, now)

    def _unsettled(self, state, now: datetime) -> bool:
        return (
            not state.welcomed
            # Months only move forward: a process whose clock lags a little is not unsettled.
            or (self._trial > 0 and (state.trial_month or "") < month_label(now, self._tz))
            or (state.next_expiry is not None and state.next_expiry <= now)
        )

    def _settle(self, conn: Connection, user_id: str, now: datetime) -> None:
        state = self._lock(conn, user_id, now)
        if not self._unsettled(state, now):
            return  # another transaction settled it meanwhile
        if not state.welcomed and self._gift > 0:
            self._grant(conn, user_id, kind="welcome_gift", amount=self._gift, source_ref=f"welcome:{user_id}",
                        valid_from=now, expires_at=None, note=None, actor=None, now=now)
        month = carrier_month(now, self._tz)
        if self._trial > 0 and (state.trial_month or "") < month.label:
            self._grant(conn, user_id, kind="monthly_trial", amount=self._trial,
                        source_ref=f"trial:{user_id}:{month.label}", valid_from=month.start,
                        expires_at=month.end, note=None, actor=None, now=now)
            execute(conn, q.SETTLED_MONTH, {"u": user_id, "month": month.label})
        else:
            execute(conn, q.SETTLED, {"u": user_id})
        if state.next_expiry is not None and state.next_expiry <= now:
            self._sweep(conn, user_id, now)

    def _lock(self, conn: Connection, user_id: str, now: datetime):
        """Lock the user's account row, creating it first if needed; returns its lazy state."""
        state = execute(conn, q.LOCK_ACCOUNT, {"u": user_id}).first()
        if state is None:
            execute(conn, self._new_account, {"user_id": user_id, "created_at": now})
            state = execute(conn, q.LOCK_ACCOUNT, {"u": user_id}).one()
        return state

    # Grants -----------------------------------------------------------------------------------

    async def grant(self, user_id: str, *, kind: str, amount: int, source_ref: str,
                    valid_from: datetime | None = None, expires_at: datetime | None = None,
                    note: str | None = None, actor: str | None = None) -> GrantView:
        """Add tokens. Idempotent by ``source_ref``: a repeat returns the grant made first."""
        if kind not in GRANT_KINDS:
            raise InvalidOption(f"unknown grant kind {kind!r}", field="kind")
        if amount <= 0:
            raise InvalidOption("a grant's amount must be positive", field="amount")
        now = self._clock()
        valid_from = valid_from or now
        if expires_at is not None and expires_at <= valid_from:
            raise InvalidOption("a grant must expire after it becomes valid", field="expires_at")

        def tx(conn: Connection) -> GrantView:
            self._lock(conn, user_id, now)
            return self._grant(conn, user_id, kind=kind, amount=amount, source_ref=source_ref,
                               valid_from=valid_from, expires_at=expires_at, note=note, actor=actor, now=now)

        return await run_write(self._engine, tx)

    def _grant(self, conn: Connection, user_id: str, *, kind: str, amount: int, source_ref: str,
               valid_from: datetime, expires_at: datetime | None, note: str | None, actor: str | None,
               now: datetime) -> GrantView:
        view = GrantView(id=_new_id(), user_id=user_id, kind=kind, amount=amount, remaining=amount, held=0,
                         captured=0, expired=0, source_ref=source_ref, valid_from=valid_from,
                         expires_at=expires_at, created_at=now, note=note, actor=actor)
        values = {f: getattr(view, f) for f in view.__struct_fields__}
        if execute(conn, self._insert_grant, values).first() is None:
            existing = execute(conn, q.GRANT_BY_REF, {"ref": source_ref}).one()
            if (existing.user_id, existing.kind, existing.amount) != (user_id, kind, amount):
                raise SourceRefReused(f"source reference {source_ref!r} belongs to grant {existing.id}")
            return GrantView(**existing._asdict())
        account = q.GRANT_ACCOUNT if expires_at is None else q.GRANT_ACCOUNT_EXPIRING
        after = execute(conn, account, {"u": user_id, "amt": amount, "e": expires_at}).one()
        execute(conn, q.INSERT_ENTRY, {
            "user_id": user_id, "at": now, "kind": "grant", "amount": amount, "balance_after": after.available,
            "held_after": after.held, "grant_id": view.id, "note": note, "actor": actor,
        })
        return view

    # Holds ------------------------------------------------------------------------------------

    async def reserve(self, user_id: str, amount: int, *, operation_id: str, feature: str,
                      deadline: datetime) -> HoldView:
        """Set ``amount`` aside for one operation, all or nothing, drawn in spend order.
        One hold per operation: a repeat for the same operation returns the first hold."""
        if amount <= 0:
            raise InvalidOption("a reservation must be positive", field="amount")
        now = self._clock()
        for _ in range(3):  # settling takes one retry; a second only if another process raced it
            try:
                if self._stored:
                    return await self._reserve_stored(user_id, amount, operation_id, feature, deadline, now)
                return await run_write(self._engine, self._reserve, user_id, amount, operation_id, feature,
                                       deadline, now)
            except _Unsettled:
                await self._ensure(user_id, now)
            except IntegrityError:
                existing = await run_read(self._engine, self._hold_of, operation_id)
                if existing is None or (existing.user_id, existing.amount) != (user_id, amount):
                    raise
                return existing
        raise LedgerInvariantBroken(f"the account of {user_id} does not settle")

    def _reserve(self, conn: Connection, user_id: str, amount: int, operation_id: str, feature: str,
                 deadline: datetime, now: datetime) -> HoldView:
        # Read the clock again under the account lock: a grant that a racing first request made
        # after ``now`` was taken (the welcome gift) is then already valid for this one.
        now = max(now, self._clock())
        after = execute(conn, q.RESERVE_ACCOUNT, {"u": user_id, "amt": amount}).first()
        if after is None or self._unsettled(after, now):
            raise _Unsettled
        grants = execute(conn, q.USABLE, {"u": user_id, "now": now}).all()
        parts, short = plan(grants, amount)
        if short:
            balance = sum(g.remaining for g in grants)
            raise InsufficientTokens(f"this costs {amount:,} tokens and the balance is {balance:,}",
                                     price=amount, balance=balance)
        if after.available < 0:
            raise LedgerInvariantBroken(f"account {user_id} totals disagree with its grants")
        hold = HoldView(id=_new_id(), user_id=user_id, operation_id=operation_id, feature=feature, amount=amount,
                        status="held", reason=None, created_at=now, deadline=deadline, finished_at=None,
                        available=after.available)
        execute(conn, q.TAKE, [{"gid": g.id, "x": x} for g, x in parts])
        execute(conn, q.INSERT_HOLD, {
            "id": hold.id, "user_id": user_id, "operation_id": operation_id, "feature": feature, "amount": amount,
            "parts": len(parts), "status": "held", "created_at": now, "deadline": deadline,
        })
        execute(conn, q.INSERT_PARTS, [{"hold_id": hold.id, "grant_id": g.id, "amount": x} for g, x in parts])
        execute(conn, q.INSERT_ENTRY, {
            "user_id": user_id, "at": now, "kind": "reserve", "amount": -amount, "held_delta": amount,
            "balance_after": after.available, "held_after": after.held, "hold_id": hold.id,
            "operation_id": operation_id, "feature": feature,
        })
        return hold

    async def _reserve_stored(self, user_id: str, amount: int, operation_id: str, feature: str,
                              deadline: datetime, now: datetime) -> HoldView:
        """_reserve as one element of a ledger_reserve_many batch (PostgreSQL)."""
        params = {"u": user_id, "amt": amount, "op": operation_id, "feature": feature, "deadline": deadline,
                  "now": now, "month": month_label(now, self._tz) if self._trial > 0 else None, "hid": _new_id()}
        row = await self._reserve_batch.call(params)
        if row.outcome == "short" and row.pending_from is not None and row.pending_from <= (later := self._clock()):
            # A grant that a racing first request made after ``now`` was read (see _reserve).
            now = params["now"] = later
            row = await self._reserve_batch.call(params)
        if row.outcome == "unsettled":
            raise _Unsettled
        if row.outcome == "duplicate":
            raise _HoldExists(operation_id)
        if row.outcome == "short":
            raise InsufficientTokens(f"this costs {amount:,} tokens and the balance is {row.balance:,}",
                                     price=amount, balance=row.balance)
        return HoldView(id=params["hid"], user_id=user_id, operation_id=operation_id, feature=feature,
                        amount=amount, status="held", reason=None, created_at=now, deadline=deadline,
                        finished_at=None, available=row.available)

    async def capture(self, hold_id: str) -> HoldView:
        """Charge a hold for good. Idempotent; a released hold cannot be captured."""
        if self._stored:
            return await self._capture_stored(hold_id, self._clock())
        return await run_write(self._engine, self._capture, hold_id, self._clock())

    def _capture(self, conn: Connection, hold_id: str, now: datetime) -> HoldView:
        hold = execute(conn, q.FINISH_HOLD, {"hid": hold_id, "st": "captured", "why": None, "now": now}).first()
        if hold is None:
            return self._finished(conn, hold_id, "captured")
        after = execute(conn, q.CAPTURE_ACCOUNT, {"u": hold.user_id, "amt": hold.amount}).one()
        touched = execute(conn, q.CAPTURE_GRANTS, {"hid": hold_id}).all()
        if len(touched) != hold.parts:
            raise LedgerInvariantBroken(f"hold {hold_id} draws on {hold.parts} grants, found {len(touched)}")
        execute(conn, q.INSERT_ENTRY, {
            "user_id": hold.user_id, "at": now, "kind": "capture", "amount": 0, "held_delta": -hold.amount,
            "captured_delta": hold.amount, "balance_after": after.available, "held_after": after.held,
            "hold_id": hold_id, "operation_id": hold.operation_id, "feature": hold.feature,
        })
        return _hold_view(hold, self._sweep_if_due(conn, hold.user_id, after, now))

    async def release(self, hold_id: str, *, reason: str) -> HoldView:
        """Give a hold's tokens back to their grants (a grant that expired meanwhile loses them
        to expired). Idempotent; a captured hold cannot be released."""
        view, _ = await run_write(self._engine, self._release, hold_id, reason, self._clock())
        return view

    def _release(self, conn: Connection, hold_id: str, reason: str, now: datetime) -> tuple[HoldView, bool]:
        hold = execute(conn, q.FINISH_HOLD, {"hid": hold_id, "st": "released", "why": reason[:64],
                                            "now": now}).first()
        if hold is None:
            return self._finished(conn, hold_id, "released"), False
        parts = execute(conn, q.PARTS, {"hid": hold_id}).all()
        lapsed = {p.grant_id for p in parts if p.expires_at is not None and p.expires_at <= now}
        lost = sum(p.amount for p in parts if p.grant_id in lapsed)
        back = sum(p.amount for p in parts) - lost
        if len(parts) != hold.parts or back + lost != hold.amount:
            raise LedgerInvariantBroken(f"hold {hold_id} parts disagree with the hold")
        soonest = min((p.expires_at for p in parts if p.expires_at is not None and p.grant_id not in lapsed),
                      default=None)
        account = q.RELEASE_ACCOUNT if soonest is None else q.RELEASE_ACCOUNT_EXPIRING
        after = execute(conn, account, {"u": hold.user_id, "amt": hold.amount, "back": back, "lost": lost,
                                       "e": soonest}).one()
        execute(conn, q.GIVE_BACK, [
            {"gid": p.grant_id, "a": p.amount, "r": 0 if p.grant_id in lapsed else p.amount,
             "l": p.amount if p.grant_id in lapsed else 0} for p in parts
        ])
        if lapsed:
            execute(conn, q.PART_LAPSED, [
                {"hid": hold_id, "gid": p.grant_id, "l": p.amount} for p in parts if p.grant_id in lapsed
            ])
        execute(conn, q.INSERT_ENTRY, {
            "user_id": hold.user_id, "at": now, "kind": "release", "amount": back, "held_delta": -hold.amount,
            "expired_delta": lost, "balance_after": after.available, "held_after": after.held,
            "hold_id": hold_id, "operation_id": hold.operation_id, "feature": hold.feature, "note": reason,
        })
        return _hold_view(hold, self._sweep_if_due(conn, hold.user_id, after, now)), True

    async def _capture_stored(self, hold_id: str, now: datetime) -> HoldView:
        """_capture as one element of a ledger_capture_many batch (PostgreSQL); a due sweep
        follows in its own transaction."""
        row = await self._capture_batch.call({"hid": hold_id, "now": now})
        if row.outcome == "finished":
            return await run_read(self._engine, self._finished, hold_id, "captured")
        available = row.available
        if row.next_expiry is not None and row.next_expiry <= now:
            available = (await run_write(self._engine, self._lock_and_sweep, row.user_id, now))[1]
        return HoldView(id=hold_id, user_id=row.user_id, operation_id=row.operation_id, feature=row.feature,
                        amount=row.amount, status="captured", reason=None, created_at=row.created_at,
                        deadline=row.deadline, finished_at=now, available=available)

    def _finished(self, conn: Connection, hold_id: str, wanted: str) -> HoldView:
        """A repeat capture/release: the hold as it is, or why it cannot become ``wanted``."""
        hold = execute(conn, q.HOLD, {"hid": hold_id}).first()
        if hold is None:
            raise NotFound(f"no hold {hold_id}")
        if hold.status != wanted:
            raise HoldNotActive(f"hold {hold_id} is {hold.status}", hold_status=hold.status)
        return _hold_view(hold, hold.available)

    def _hold_of(self, conn: Connection, operation_id: str) -> HoldView | None:
        hold = execute(conn, q.HOLD_BY_OPERATION, {"op": operation_id}).first()
        return None if hold is None else _hold_view(hold, hold.available)

    # Sweepers ---------------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """Move what remains of every grant past its expiry to expired; returns how many grants."""
        now = self._clock()
        users = await run_read(self._engine, lambda c: execute(c, q.USERS_WITH_DUE, {"now": now}).scalars().all())
        swept = 0
        for user_id in users:
            swept += (await run_write(self._engine, self._lock_and_sweep, user_id, now))[0]
        return swept

    def _lock_and_sweep(self, conn: Connection, user_id: str, now: datetime) -> tuple[int, int]:
        self._lock(conn, user_id, now)
        return self._sweep(conn, user_id, now)

    def _sweep_if_due(self, conn: Connection, user_id: str, after, now: datetime) -> int:
        """The balance after a capture or release, with lapsed grants swept first, so that the
        balance reported (X-Tokens-Remaining) is what the user can spend."""
        if after.next_expiry is not None and after.next_expiry <= now:
            return self._sweep(conn, user_id, now)[1]
        return after.available

    def _sweep(self, conn: Connection, user_id: str, now: datetime) -> tuple[int, int]:
        """Expire the user's lapsed grants: (how many, the balance after)."""
        due = execute(conn, q.DUE, {"u": user_id, "now": now}).all()
        if due:
            execute(conn, q.LAPSE, [{"gid": g.id, "x": g.remaining} for g in due])
        total = sum(g.remaining for g in due)
        after = execute(conn, q.SWEEP_ACCOUNT, {"u": user_id, "amt": total}).one()
        balance = after.available + total
        rows = []
        for g in due:
            balance -= g.remaining
            rows.append({"user_id": user_id, "at": now, "kind": "expire", "amount": -g.remaining,
                         "expired_delta": g.remaining, "balance_after": balance, "held_after": after.held,
                         "grant_id": g.id})
        if rows:
            execute(conn, q.INSERT_ENTRY, rows)
        return len(due), after.available

    async def reap(self) -> list[str]:
        """Release every hold past its deadline (reason 'deadline'); returns their operation ids."""
        now = self._clock()
        due = await run_read(self._engine, lambda c: execute(c, q.DUE_HOLDS, {"now": now}).scalars().all())
        reaped = []
        for hold_id in due:
            try:
                view, released = await run_write(self._engine, self._release, hold_id, "deadline", now)
            except HoldNotActive:
                continue  # captured meanwhile: its operation finished after all
            if released:
                reaped.append(view.operation_id)
        return reaped

    # Reading ----------------------------------------------------------------------------------

    async def balance(self, user_id: str) -> BalanceView:
        now = self._clock()
        await self._ensure(user_id, now)
        grants = await run_read(self._engine, lambda c: execute(c, q.LIVE, {"u": user_id}).all())
        grants.sort(key=spend_key)
        return BalanceView(
            user_id=user_id,
            available=sum(g.remaining for g in grants if usable(g, now)),
            held=sum(g.held for g in grants),
            grants=[GrantBalance(id=g.id, kind=g.kind, amount=g.amount, remaining=g.remaining, held=g.held,
                                 valid_from=g.valid_from, expires_at=g.expires_at) for g in grants],
        )

    async def quote(self, user_id: str, amount: int) -> QuoteView:
        """Would ``amount`` be affordable now, and which grants would pay (as far as they reach)."""
        now = self._clock()
        await self._ensure(user_id, now)
        grants = await run_read(self._engine, lambda c: execute(c, q.USABLE, {"u": user_id, "now": now}).all())
        parts, short = plan(grants, amount)
        return QuoteView(
            user_id=user_id, amount=amount, affordable=short == 0, balance=sum(g.remaining for g in grants),
            parts=[QuotePart(grant_id=g.id, kind=g.kind, amount=x, expires_at=g.expires_at) for g, x in parts],
        )

    async def entries(self, user_id: str, *, limit: int = 50, before_id: int | None = None) -> list[EntryView]:
        """The user's journal, newest first; page with ``before_id`` = the last id seen."""
        params = {"u": user_id, "limit": max(1, min(limit, 500)), "before": before_id}
        stmt = q.ENTRIES if before_id is None else q.ENTRIES_BEFORE
        rows = await run_read(self._engine, lambda c: execute(c, stmt, params).all())
        return [self._entry_view(r) for r in rows]

    def _entry_view(self, r) -> EntryView:
        title = None if r.feature is None else self._titles.get(r.feature, r.feature)
        return EntryView(
            id=r.id, at=r.at, kind=r.kind, amount=r.amount, held_change=r.held_delta, operation_id=r.operation_id,
            feature=r.feature, grant_id=r.grant_id, hold_id=r.hold_id, balance_after=r.balance_after,
            held_after=r.held_after, note=r.note,
            text=describe(kind=r.kind, amount=r.amount, held_change=r.held_delta, expired_change=r.expired_delta,
                          balance_after=r.balance_after, feature_title=title, grant_kind=r.grant_kind,
                          note=r.note),
        )

    # Revocation -------------------------------------------------------------------------------

    async def revoke_grant(self, grant_id: str, *, reason: str, actor: str | None = None) -> GrantView:
        """Take back what remains of a grant (a refunded purchase). ``remaining`` moves to
        ``expired`` and is journaled as an ``expire`` entry noted "revoked: <reason>", so the
        grant stays conserved and the audit counts it like any expiry. Held tokens stay with their
        operations (a release gives them back to the grant, spendable). Idempotent: the first call
        journals, even when nothing remains; later calls return the grant as it is."""
        now = self._clock()
        one = G.select().where(G.c.id == grant_id)
        revoked = select(E.c.id).where(E.c.grant_id == grant_id, E.c.kind == "expire",
                                       E.c.note.startswith(REVOKED))

        def tx(conn: Connection) -> GrantView:
            found = execute(conn, one).first()
            if found is None:
                raise NotFound(f"no grant {grant_id}")
            self._lock(conn, found.user_id, now)  # lock order: account, then its grants
            grant = execute(conn, one).one()
            if execute(conn, revoked).first() is None:
                taken = grant.remaining
                if taken:
                    execute(conn, q.LAPSE, {"gid": grant_id, "x": taken})
                after = execute(conn, q.SWEEP_ACCOUNT, {"u": grant.user_id, "amt": taken}).one()
                execute(conn, q.INSERT_ENTRY, {
                    "user_id": grant.user_id, "at": now, "kind": "expire", "amount": -taken,
                    "expired_delta": taken, "balance_after": after.available, "held_after": after.held,
                    "grant_id": grant_id, "note": REVOKED + reason, "actor": actor,
                })
                grant = execute(conn, one).one()
            return GrantView(**grant._asdict())

        return await run_write(self._engine, tx)


def _hold_view(row, available: int) -> HoldView:
    return HoldView(id=row.id, user_id=row.user_id, operation_id=row.operation_id, feature=row.feature,
                    amount=row.amount, status=row.status, reason=row.reason, created_at=row.created_at,
                    deadline=row.deadline, finished_at=row.finished_at, available=available)
