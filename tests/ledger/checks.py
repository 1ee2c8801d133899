"""Assertions shared by the ledger tests: read the tables directly, never through the ledger."""

from __future__ import annotations

from sqlalchemy import select, text

from app.db import run_read, run_write
from app.ledger.audit import audit
from app.tables import grants


async def grant_rows(engine, user_id: str | None = None) -> list:
    stmt = select(grants).order_by(grants.c.created_at, grants.c.id)
    if user_id is not None:
        stmt = stmt.where(grants.c.user_id == user_id)
    return await run_read(engine, lambda c: c.execute(stmt).all())


async def assert_sound(engine) -> None:
    """Invariant 1 on every grant, and a clean audit."""
    for g in await grant_rows(engine):
        assert g.amount == g.remaining + g.held + g.captured + g.expired, g
        assert min(g.remaining, g.held, g.captured, g.expired) >= 0, g
    assert await audit(engine) == []


async def execute(engine, sql: str, **params) -> None:
    """Raw SQL behind the ledger's back (tampering, in tests)."""
    await run_write(engine, lambda c: c.execute(text(sql), params))
