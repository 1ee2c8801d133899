"""Retention: users' photos are personal data, so an operation's input object goes after N hours
and its result after M days (both counted from the operation's ``created_at``). Records stay,
keys included: a record whose object is gone is how the API knows to answer 410 result_expired.

Driven by the operations table, which knows every key and its age. To stay cheap when run every
few minutes, each kind keeps a watermark (the last record it purged) as a small object in the
store itself, so a run reads only the records that came of age since the last one; a store
pointed at a fresh bucket starts from the beginning, as it should. A watermark is written only
after its batch is deleted, so any run may crash or race another replica: deletes are idempotent
and the worst case is a batch deleted twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import run_read
from app.storage.base import BlobMissing, BlobStore
from app.tables import operations as t

log = logging.getLogger(__name__)

BATCH = 500


class PurgeReport(msgspec.Struct, kw_only=True):
    inputs: int = 0  # records whose input object this run deleted
    results: int = 0  # records whose result object this run deleted


class _Mark(msgspec.Struct):
    created_at: datetime
    id: str


async def purge(store: BlobStore, engine: AsyncEngine, now: datetime, input_hours: float,
                result_days: float) -> PurgeReport:
    """Delete every input older than ``input_hours`` and result older than ``result_days``."""
    return PurgeReport(
        inputs=await _purge(store, engine, "input_key", now - timedelta(hours=input_hours)),
        results=await _purge(store, engine, "result_key", now - timedelta(days=result_days)),
    )


async def _purge(store: BlobStore, engine: AsyncEngine, column: str, cutoff: datetime) -> int:
    mark_key = f"retention/{column}.mark"
    mark = await _read_mark(store, mark_key)
    purged = 0
    while True:
        rows = await run_read(engine, _due, column, cutoff, mark)
        if not rows:
            return purged
        await store.delete_many(row.key for row in rows)
        mark = _Mark(rows[-1].created_at, rows[-1].id)
        await store.put(mark_key, msgspec.json.encode(mark), "application/json")
        purged += len(rows)
        if len(rows) < BATCH:
            return purged


def _due(conn: sa.Connection, column: str, cutoff: datetime, mark: _Mark | None) -> list[sa.Row]:
    """The next batch of records with a ``column`` key, older than ``cutoff``, after ``mark``
    (in (created_at, id) order; an index on operations.created_at keeps this a range scan)."""
    query = sa.select(t.c.id, t.c.created_at, t.c[column].label("key")).where(
        t.c.created_at < cutoff, t.c[column].is_not(None))
    if mark is not None:
        query = query.where(sa.or_(t.c.created_at > mark.created_at,
                                   sa.and_(t.c.created_at == mark.created_at, t.c.id > mark.id)))
    return list(conn.execute(query.order_by(t.c.created_at, t.c.id).limit(BATCH)))


async def _read_mark(store: BlobStore, key: str) -> _Mark | None:
    try:
        return msgspec.json.decode(await store.get(key), type=_Mark)
    except BlobMissing:
        return None
    except msgspec.DecodeError:
        log.warning("retention watermark %s is unreadable; starting from the first record", key)
        return None
