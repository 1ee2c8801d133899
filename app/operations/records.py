"""Operation records: one row per operation, in the ledger's database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import run_read, run_write

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
    """Reads and writes go through app.db.run_read / run_write: on SQLite they share the
    ledger's single writer thread (group commit) and WAL readers, instead of contending for the
    write lock through aiosqlite."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def _write(self, statement) -> int:
        return await run_write(self.engine, lambda conn: conn.execute(statement).rowcount)

    async def _rows(self, query) -> list[Operation]:
        return await run_read(self.engine, lambda conn: [_row(r) for r in conn.execute(query)])

    async def insert(self, **values: Any) -> Operation:
        """The new record, as stored (RETURNING: no second round trip to read it back)."""
        return await self._written_row(t.insert().values(**values))

    async def update(self, op_id: str, **values: Any) -> None:
        await self._write(t.update().where(t.c.id == op_id).values(**values))

    async def updated(self, op_id: str, **values: Any) -> Operation:
        """Update, and answer the record as it now is (in the same statement)."""
        return await self._written_row(t.update().where(t.c.id == op_id).values(**values))

    async def _written_row(self, statement) -> Operation:
        return await run_write(self.engine, lambda conn: _row(conn.execute(statement.returning(*t.c)).one()))

    async def settle(self, op_id: str, **values: Any) -> bool:
        """Finish an active operation; False when it already finished (a late or racing answer)."""
        return await self._write(t.update().where(t.c.id == op_id, t.c.status.in_(ACTIVE)).values(**values)) == 1

    async def forget_key(self, op_id: str) -> None:
        """A failed operation gives its Idempotency-Key back, so a retry can run."""
        await self._write(t.update().where(t.c.id == op_id, t.c.status.not_in(ACTIVE)).values(idempotency_key=None))

    async def get(self, op_id: str, user_id: str | None = None) -> Operation | None:
        query = t.select().where(t.c.id == op_id)
        if user_id is not None:
            query = query.where(t.c.user_id == user_id)
        rows = await self._rows(query)
        return rows[0] if rows else None

    async def by_key(self, user_id: str, key: str) -> Operation | None:
        rows = await self._rows(t.select().where(t.c.user_id == user_id, t.c.idempotency_key == key))
        return rows[0] if rows else None

    async def list(self, user_id: str, *, feature: str | None = None, status: str | None = None,
                   limit: int = 20, before: datetime | None = None) -> list[Operation]:
        query = t.select().where(t.c.user_id == user_id)
        if feature:
            query = query.where(t.c.feature == feature)
        if status:
            query = query.where(t.c.status == status)
        if before:
            query = query.where(t.c.created_at < before)
        return await self._rows(query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit))

    async def active_with_vendor(self, vendors: list[str]) -> list[Operation]:
        return await self._rows(t.select().where(t.c.status == "running", t.c.vendor.in_(vendors)))

    async def overdue(self, now: datetime) -> list[Operation]:
        return await self._rows(t.select().where(t.c.status.in_(ACTIVE), t.c.deadline < now))
