"""Operation records: one row per operation, in the ledger's database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.tables import operations as t

ACTIVE = ("pending", "running")


class Operation(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    feature: str
    runner: str
    model: str | None
    options: dict[str, Any]
    status: str
    error_code: str | None
    error_detail: str | None
    idempotency_key: str | None
    request_hash: str | None
    tokens_held: int
    tokens_charged: int
    hold_id: str | None
    input_key: str | None
    result_key: str | None
    result_content_type: str | None
    result_meta: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline: datetime | None
    vendor: str | None = None
    vendor_task_id: str | None = None


def _row(row) -> Operation:
    return Operation(**row._mapping)


class OperationRecords:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def insert(self, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(t.insert().values(**values))

    async def update(self, op_id: str, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(t.update().where(t.c.id == op_id).values(**values))

    async def get(self, op_id: str, user_id: str | None = None) -> Operation | None:
        query = t.select().where(t.c.id == op_id)
        if user_id is not None:
            query = query.where(t.c.user_id == user_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row(row) if row else None

    async def by_key(self, user_id: str, key: str) -> Operation | None:
        query = t.select().where(t.c.user_id == user_id, t.c.idempotency_key == key)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row(row) if row else None

    async def forget_key(self, op_id: str) -> None:
        """A failed operation gives its Idempotency-Key back, so a retry can run."""
        async with self.engine.begin() as conn:
            await conn.execute(
                t.update().where(t.c.id == op_id, t.c.status.not_in(ACTIVE)).values(idempotency_key=None)
            )

    async def list(self, user_id: str, *, feature: str | None = None, status: str | None = None,
                   limit: int = 20, before: datetime | None = None) -> list[Operation]:
        query = t.select().where(t.c.user_id == user_id)
        if feature:
            query = query.where(t.c.feature == feature)
        if status:
            query = query.where(t.c.status == status)
        if before:
            query = query.where(t.c.created_at < before)
        query = query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(query))]

    async def settle(self, op_id: str, **values: Any) -> bool:
        """Finish an active operation; False when it already finished (a late or racing answer)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(t.update().where(t.c.id == op_id, t.c.status.in_(ACTIVE)).values(**values))
        return result.rowcount == 1

    async def active_with_vendor(self, vendors: list[str]) -> list[Operation]:
        query = t.select().where(t.c.status == "running", t.c.vendor.in_(vendors))
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(query))]

    async def overdue(self, now: datetime) -> list[Operation]:
        query = t.select().where(t.c.status.in_(ACTIVE), t.c.deadline < now)
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(query))]
