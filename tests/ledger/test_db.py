"""app.db: UTC timestamps, write transactions (SQLite's group commit included), engine setup."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from sqlalchemy.exc import IntegrityError, NoResultFound

from app.db import UTCDateTime, create_engine, dispose, execute, run_read, run_write

scratch = MetaData()
stamps = Table("scratch_stamps", scratch, Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
names = Table("scratch_names", scratch, Column("name", String(20), primary_key=True))
blobs = Table("scratch_blobs", scratch, Column("id", Integer, primary_key=True), Column("body", String))


@pytest.fixture
async def scratch_engine(engine):
    await run_write(engine, scratch.create_all)
    return engine


async def test_timestamps_come_back_aware_and_in_utc(scratch_engine):
    shanghai = timezone(timedelta(hours=8))
    written = datetime(2026, 2, 1, 0, 30, 15, 123456, tzinfo=shanghai)
    await run_write(scratch_engine, lambda c: c.execute(insert(stamps), {"id": 1, "at": written}))
    read = await run_read(scratch_engine, lambda c: c.execute(select(stamps.c.at)).scalar_one())
    assert read == written and read.tzinfo == timezone.utc
    assert read == datetime(2026, 1, 31, 16, 30, 15, 123456, tzinfo=timezone.utc)
    earlier = await run_read(scratch_engine, lambda c: c.execute(
        select(func.count()).where(stamps.c.at < datetime(2026, 1, 31, 17, tzinfo=timezone.utc))).scalar_one())
    assert earlier == 1


async def test_naive_timestamps_are_refused(scratch_engine):
    with pytest.raises(Exception, match="naive datetime"):
        await run_write(scratch_engine, lambda c: c.execute(insert(stamps), {"id": 2, "at": datetime(2026, 1, 1)}))


async def test_a_failing_transaction_leaves_no_trace_and_spares_its_neighbours(scratch_engine):
    await run_write(scratch_engine, lambda c: c.execute(insert(names), {"name": "taken"}))

    def add(conn, name: str, fail: str | None) -> str:
        conn.execute(insert(names), {"name": name})
        if fail == "python":
            raise ValueError(name)
        if fail == "database":
            conn.execute(insert(names), {"name": "taken"})
        return name

    failures = [None, "python", None, "database"]
    results = await asyncio.gather(
        *(run_write(scratch_engine, add, f"n{i}", failures[i % 4]) for i in range(40)), return_exceptions=True)
    assert [type(r).__name__ for r in results[:4]] == ["str", "ValueError", "str", "IntegrityError"]
    stored = await run_read(scratch_engine, lambda c: set(c.execute(select(names.c.name)).scalars()))
    assert stored == {"taken"} | {f"n{i}" for i in range(40) if failures[i % 4] is None}


async def test_sqlite_engine_makes_its_folder(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/a/b/ledger.db")
    try:
        assert await run_read(engine, lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar()) == "wal"
        assert (tmp_path / "a" / "b" / "ledger.db").exists()
    finally:
        await dispose(engine)


async def test_execute_answers_like_connection_execute(scratch_engine):
    """app.db.execute (the sqlite3 cursor on SQLite) gives the rows, types and errors that
    Connection.execute gives."""
    shanghai = timezone(timedelta(hours=8))
    at = datetime(2026, 3, 1, 8, 0, 0, 250, tzinfo=shanghai)

    def write(conn):
        execute(conn, insert(stamps), [{"id": 1, "at": at}, {"id": 2, "at": at + timedelta(days=1)}])
        execute(conn, insert(names), {"name": "a"})
        return execute(conn, names.update().values(name="b").where(names.c.name == "a")).rowcount

    assert await run_write(scratch_engine, write) == 1
    query = select(stamps.c.id, stamps.c.at).where(stamps.c.at > at - timedelta(seconds=1)).order_by(stamps.c.id)

    def both(conn):
        return execute(conn, query).all(), conn.execute(query).all()

    fast, slow = await run_read(scratch_engine, both)
    assert [tuple(r) for r in fast] == [tuple(r) for r in slow] == [(1, at), (2, at + timedelta(days=1))]
    assert fast[0].at.tzinfo == timezone.utc and fast[0]._asdict() == {"id": 1, "at": at}
    assert await run_read(scratch_engine, lambda c: execute(c, select(names.c.name)).scalars().all()) == ["b"]
    with pytest.raises(NoResultFound):
        await run_read(scratch_engine, lambda c: execute(c, select(names.c.name).where(names.c.name == "z")).one())
    with pytest.raises(IntegrityError):
        await run_write(scratch_engine, lambda c: execute(c, insert(names), {"name": "b"}))


async def test_sqlite_checkpoints_happen_off_the_writer(tmp_path):
    """The writer turns SQLite's automatic checkpoint off; the checkpointer thread must then
    copy the WAL into the database file on its own, or the WAL would grow for ever."""
    path = tmp_path / "checkpoint.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await run_write(engine, scratch.create_all)
        before = path.stat().st_size
        for start in range(0, 400, 40):
            await run_write(engine, lambda c, s=start: execute(
                c, insert(blobs), [{"id": i, "body": "x" * 4000} for i in range(s, s + 40)]))
        wal = await run_read(engine, lambda c: c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
        for _ in range(50):  # the checkpointer runs every half second while there are writes
            if path.stat().st_size > before + 1_000_000:
                break
            await asyncio.sleep(0.1)
        assert path.stat().st_size > before + 1_000_000, (before, path.stat().st_size)
        assert wal == 1000  # readers keep SQLite's default; only the writer's connection opts out
    finally:
        await dispose(engine)
