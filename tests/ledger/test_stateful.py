"""Invariant 6: random sequences of grants, reservations, captures, releases, expiry, reaping and
clock moves (across Shanghai month boundaries) agree with a small in-memory model, and every grant
stays whole after every step."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from app.db import dispose, run_write, upgrade_async
from app.errors import InsufficientTokens
from app.ledger import HoldNotActive, Ledger
from app.tables import metadata

from .checks import assert_sound, grant_rows
from .conftest import BACKENDS, drop_database, make_database

SHANGHAI = ZoneInfo("Asia/Shanghai")
GIFT, TRIAL = 500_000, 100_000
USER = "user-1"
PAID = {"package", "pay_as_you_go"}
FAR = datetime.max.replace(tzinfo=timezone.utc)


@dataclass
class MGrant:
    ref: str
    kind: str
    amount: int
    valid_from: datetime
    expires_at: datetime | None
    id: str = ""  # the ledger's id, learnt after the fact
    remaining: int = 0
    held: int = 0
    captured: int = 0
    expired: int = 0

    def __post_init__(self) -> None:
        self.remaining = self.amount

    def order(self) -> tuple:
        return (self.expires_at is None, self.expires_at or FAR, self.kind in PAID, self.valid_from, self.id)

    def lapsed(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass
class MHold:
    id: str
    operation_id: str
    deadline: datetime
    parts: list[tuple[MGrant, int]]
    status: str = "held"


@dataclass
class Model:
    """What the ledger should hold, computed the simplest way."""

    now: datetime
    grants: dict[str, MGrant] = field(default_factory=dict)
    holds: list[MHold] = field(default_factory=list)
    welcomed: bool = False
    trial_month: str | None = None

    def month(self) -> tuple[str, datetime, datetime]:
        local = self.now.astimezone(SHANGHAI)
        start = datetime(local.year, local.month, 1, tzinfo=SHANGHAI)
        end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=SHANGHAI)
        return f"{local:%Y-%m}", start.astimezone(timezone.utc), end.astimezone(timezone.utc)

    def settle(self) -> None:
        if not self.welcomed:
            self.add(MGrant(f"welcome:{USER}", "welcome_gift", GIFT, self.now, None))
            self.welcomed = True
        label, start, end = self.month()
        if self.trial_month != label:
            self.add(MGrant(f"trial:{USER}:{label}", "monthly_trial", TRIAL, start, end))
            self.trial_month = label
        self.sweep()

    def add(self, grant: MGrant) -> MGrant:
        return self.grants.setdefault(grant.ref, grant)

    def sweep(self) -> int:
        due = [g for g in self.grants.values() if g.remaining and g.lapsed(self.now)]
        for g in due:
            g.expired += g.remaining
            g.remaining = 0
        return len(due)

    def usable(self) -> list[MGrant]:
        return sorted((g for g in self.grants.values()
                       if g.remaining and g.valid_from <= self.now and not g.lapsed(self.now)), key=MGrant.order)

    def available(self) -> int:
        return sum(g.remaining for g in self.usable())

    def take(self, amount: int) -> list[tuple[MGrant, int]] | None:
        """A reservation on a settled account: all or nothing, in spend order."""
        if self.available() < amount:
            return None
        parts, left = [], amount
        for g in self.usable():
            take = min(g.remaining, left)
            if take:
                g.remaining -= take
                g.held += take
                parts.append((g, take))
                left -= take
        return parts

    def finish(self, hold: MHold, status: str) -> None:
        hold.status = status
        for g, x in hold.parts:
            g.held -= x
            if status == "captured":
                g.captured += x
            elif g.lapsed(self.now):
                g.expired += x
            else:
                g.remaining += x
        self.sweep()


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, loop: asyncio.AbstractEventLoop, engine) -> None:
        super().__init__()
        self.loop, self.engine = loop, engine
        self.run(run_write(engine, _clear))
        self.model = Model(datetime(2026, 1, 31, 15, 0, tzinfo=timezone.utc))  # 23:00 in Shanghai
        self.ledger = Ledger(engine, clock=lambda: self.model.now, monthly_trial_tokens=TRIAL)
        self.ops = 0

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    async def learn_ids(self) -> None:
        ids = {g.source_ref: g.id for g in await grant_rows(self.engine, USER)}
        for g in self.model.grants.values():
            g.id = ids[g.ref]

    @rule(kind=st.sampled_from(["package", "pay_as_you_go", "adjustment", "refund"]),
          amount=st.sampled_from([10_000, 31_000, 1_000_000]),
          expires_in=st.sampled_from([None, timedelta(hours=1), timedelta(days=1), timedelta(days=40)]),
          starts_in=st.sampled_from([timedelta(0), timedelta(0), timedelta(hours=2)]))
    def grant(self, kind, amount, expires_in, starts_in):
        valid_from = self.model.now + starts_in
        expires_at = None if expires_in is None else valid_from + expires_in
        ref = f"grant-{len(self.model.grants)}"
        view = self.run(self.ledger.grant(USER, kind=kind, amount=amount, source_ref=ref, valid_from=valid_from,
                                          expires_at=expires_at))
        self.model.add(MGrant(ref, kind, amount, valid_from, expires_at, id=view.id))

    @precondition(lambda self: any(g.ref.startswith("grant-") for g in self.model.grants.values()))
    @rule(pick=st.integers(0, 100))
    def grant_again(self, pick):
        grants = [g for g in self.model.grants.values() if g.ref.startswith("grant-")]
        g = grants[pick % len(grants)]
        view = self.run(self.ledger.grant(USER, kind=g.kind, amount=g.amount, source_ref=g.ref,
                                          valid_from=g.valid_from, expires_at=g.expires_at))
        assert view.id == g.id

    @rule(amount=st.sampled_from([1_000, 31_000, 250_000, 700_000]))
    def reserve(self, amount):
        self.ops += 1
        deadline = self.model.now + timedelta(minutes=5)
        self.model.settle()  # as the ledger does first; ids of lazy grants are learnt below
        try:
            hold = self.run(self.ledger.reserve(USER, amount, operation_id=f"op-{self.ops}", feature="cutout",
                                                deadline=deadline))
        except InsufficientTokens as refused:
            hold, refusal = None, refused.extra
        self.run(self.learn_ids())
        parts = self.model.take(amount)
        if hold is None:
            assert parts is None, "the ledger refused what the model could reserve"
            assert refusal == {"price": amount, "balance": self.model.available()}
        else:
            assert parts is not None, "the ledger reserved what the model could not"
            self.model.holds.append(MHold(hold.id, hold.operation_id, deadline, parts))
            assert hold.available == sum(g.remaining for g in self.model.grants.values())

    @precondition(lambda self: self.model.holds)
    @rule(pick=st.integers(0, 100), capture=st.booleans())
    def finish(self, pick, capture):
        hold = self.model.holds[pick % len(self.model.holds)]
        wanted = "captured" if capture else "released"
        call = self.ledger.capture(hold.id) if capture else self.ledger.release(hold.id, reason="failed")
        if hold.status not in ("held", wanted):
            with pytest.raises(HoldNotActive):
                self.run(call)
            return
        if hold.status == "held":
            self.model.finish(hold, wanted)
        assert self.run(call).status == wanted

    @rule()
    def expire_due(self):
        assert self.run(self.ledger.expire_due()) == self.model.sweep()

    @rule()
    def reap(self):
        due = [h for h in self.model.holds if h.status == "held" and h.deadline <= self.model.now]
        for hold in sorted(due, key=lambda h: h.deadline):
            self.model.finish(hold, "released")
        assert sorted(self.run(self.ledger.reap())) == sorted(h.operation_id for h in due)

    @rule(step=st.sampled_from([timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=3),
                                timedelta(days=1), timedelta(days=10), timedelta(days=31)]))
    def advance(self, step):
        self.model.now += step

    @rule()
    def balance(self):
        self.model.settle()
        balance = self.run(self.ledger.balance(USER))
        self.run(self.learn_ids())
        assert balance.available == self.model.available()
        assert balance.held == sum(g.held for g in self.model.grants.values())

    @invariant()
    def grants_match_the_model(self):
        rows = {g.source_ref: g for g in self.run(grant_rows(self.engine, USER))}
        assert set(rows) == set(self.model.grants)
        for ref, g in self.model.grants.items():
            row = rows[ref]
            assert (row.remaining, row.held, row.captured, row.expired) == (g.remaining, g.held, g.captured,
                                                                            g.expired), ref
        self.run(assert_sound(self.engine))


def _clear(conn) -> None:
    for table in reversed(metadata.sorted_tables):
        conn.execute(table.delete())


@pytest.mark.parametrize("kind", BACKENDS)
def test_ledger_agrees_with_the_model(kind, tmp_path):
    """SQLite is cheap enough for more examples; PostgreSQL's are kept to a few seconds' worth."""
    loop = asyncio.new_event_loop()
    database = loop.run_until_complete(make_database(kind, tmp_path))
    engine = database.engine()
    try:
        loop.run_until_complete(upgrade_async(engine))
        run_state_machine_as_test(
            lambda: LedgerMachine(loop, engine),
            settings=settings(max_examples=75 if kind == "sqlite" else 25, stateful_step_count=30, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]),
        )
    finally:
        loop.run_until_complete(dispose(engine))
        loop.run_until_complete(drop_database(database))
        loop.close()
