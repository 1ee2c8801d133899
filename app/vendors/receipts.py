"""Callback receipts: a signed callback is acted on once per webhook-id (vendors, billing)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import run_write
from app.tables import webhook_receipts as t


async def first_time(engine: AsyncEngine, source: str, webhook_id: str, now: datetime) -> bool:
    """Record the receipt; False when this webhook-id was already received from ``source``."""
    try:
        await run_write(engine, lambda conn: conn.execute(
            t.insert().values(source=source, webhook_id=webhook_id, received_at=now)))
    except IntegrityError:
        return False
    return True


async def forget(engine: AsyncEngine, source: str, webhook_id: str) -> None:
    """Processing failed for a reason of ours: let the sender's retry through."""
    await run_write(engine, lambda conn: conn.execute(
        t.delete().where(t.c.source == source, t.c.webhook_id == webhook_id)))
