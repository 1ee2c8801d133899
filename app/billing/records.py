"""Order and subscription rows. Every write is one conditional statement (or one short
transaction) through app.db.run_write, so two replicas, or a callback racing the request that
made the order, can never move an order along two different paths."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import and_, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import run_read, run_write
from app.tables import orders as O
from app.tables import subscriptions as S


class Order(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    user_id: str
    package_id: str
    package_name: str
    validity: str  # one_off | monthly
    price_fen: int
    tokens: int
    valid_days: int | None
    status: str  # pending | paid | failed | cancelled | refunding | refunded
    idempotency_key: str | None
    subscription_id: str | None
    period: str | None
    charge_id: str | None
    grant_id: str | None
    expires_at: datetime | None
    failure: str | None
    refunded_tokens: int | None
    refunded_fen: int | None
    refund_id: str | None
    refunded_by: str | None
    created_at: datetime
    paid_at: datetime | None
    finished_at: datetime | None
    renewal: str | None = None  # the subscription's status, for monthly packages


class Subscription(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    user_id: str
    package_id: str
    status: str  # pending | active | cancelled | lapsed
    last_period: str
    created_at: datetime
    ended_at: datetime | None


_ORDERS = select(O, S.c.status.label("renewal")).outerjoin(S, S.c.id == O.c.subscription_id)


def _order(row) -> Order:
    return Order(**row._mapping)


class OrderRecords:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def _one(self, query) -> Order | None:
        row = await run_read(self.engine, lambda c: c.execute(query).first())
        return None if row is None else _order(row)

    async def get(self, order_id: str, user_id: str | None = None) -> Order | None:
        query = _ORDERS.where(O.c.id == order_id)
        return await self._one(query if user_id is None else query.where(O.c.user_id == user_id))

    async def by_key(self, user_id: str, key: str) -> Order | None:
        return await self._one(_ORDERS.where(O.c.user_id == user_id, O.c.idempotency_key == key))

    async def of_user(self, user_id: str, limit: int) -> list[Order]:
        query = _ORDERS.where(O.c.user_id == user_id).order_by(O.c.created_at.desc(), O.c.id).limit(limit)
        return await run_read(self.engine, lambda c: [_order(r) for r in c.execute(query)])

    async def insert(self, order: Order, subscription: Subscription | None = None) -> None:
        """Raises IntegrityError when the user's Idempotency-Key is taken."""
        values = msgspec.structs.asdict(order)
        del values["renewal"]

        def tx(conn: Connection) -> None:
            if subscription is not None:
                conn.execute(S.insert().values(**msgspec.structs.asdict(subscription)))
            conn.execute(O.insert().values(**values))

        await run_write(self.engine, tx)

    async def update(self, order_id: str, when: tuple[str, ...] | None = None, **values) -> bool:
        """Change an order, only while its status is one of ``when``; False when it was not."""
        query = O.update().where(O.c.id == order_id).values(**values)
        if when is not None:
            query = query.where(O.c.status.in_(when))
        return await run_write(self.engine, lambda c: c.execute(query).rowcount == 1)

    async def record_charge(self, order_id: str, charge_id: str) -> None:
        """Billing took the charge; a callback that came first may have recorded it already."""
        query = O.update().where(O.c.id == order_id, O.c.charge_id.is_(None)).values(charge_id=charge_id)
        await run_write(self.engine, lambda c: c.execute(query))

    async def uncharged(self) -> list[Order]:
        """Pending orders billing never acknowledged: new renewals, and charges that failed to
        reach billing (billing de-duplicates by order id, so charging again is safe)."""
        query = _ORDERS.where(O.c.status == "pending", O.c.charge_id.is_(None)).order_by(O.c.created_at)
        return await run_read(self.engine, lambda c: [_order(r) for r in c.execute(query)])

    # Subscriptions ------------------------------------------------------------------------------

    async def lapse(self, subscription_id: str, now: datetime) -> None:
        """A charge failed or the package was withdrawn: no more renewals."""
        query = (S.update().where(S.c.id == subscription_id, S.c.status.in_(("pending", "active")))
                 .values(status="lapsed", ended_at=now))
        await run_write(self.engine, lambda c: c.execute(query))

    async def paid_for(self, subscription_id: str, period: str) -> None:
        """A monthly order was paid for ``period``: the subscription is active, and no renewal is
        made for that month any more (a first order paid after midnight covers the new month)."""
        def tx(conn: Connection) -> None:
            conn.execute(S.update().where(S.c.id == subscription_id, S.c.status == "pending").values(status="active"))
            conn.execute(S.update().where(S.c.id == subscription_id, S.c.last_period < period)
                         .values(last_period=period))

        await run_write(self.engine, tx)

    async def cancel(self, subscription_id: str, now: datetime) -> None:
        """End the renewal; a renewal order billing has not been asked to charge yet goes too."""
        def tx(conn: Connection) -> None:
            conn.execute(S.update().where(S.c.id == subscription_id, S.c.status.in_(("pending", "active")))
                         .values(status="cancelled", ended_at=now))
            conn.execute(O.update().where(O.c.subscription_id == subscription_id, O.c.status == "pending",
                                          O.c.charge_id.is_(None), O.c.idempotency_key.is_(None))
                         .values(status="cancelled", failure="renewal cancelled", finished_at=now))

        await run_write(self.engine, tx)

    async def due(self, period: str) -> list[Subscription]:
        """Active subscriptions with no order yet for ``period``."""
        query = select(S).where(S.c.status == "active", S.c.last_period < period)
        return await run_read(self.engine, lambda c: [Subscription(**r._mapping) for r in c.execute(query)])

    async def add_renewal(self, order: Order) -> bool:
        """Insert the renewal order and move the subscription to its period, together; False when
        another replica (or an earlier pass) already did."""
        values = msgspec.structs.asdict(order)
        del values["renewal"]
        claim = (S.update()
                 .where(and_(S.c.id == order.subscription_id, S.c.status == "active", S.c.last_period < order.period))
                 .values(last_period=order.period))

        def tx(conn: Connection) -> bool:
            if conn.execute(claim).rowcount != 1:
                return False
            conn.execute(O.insert().values(**values))
            return True

        return await run_write(self.engine, tx)
