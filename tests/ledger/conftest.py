"""Ledger fixtures: every test runs on a fresh SQLite file and on a fresh PostgreSQL schema.

PostgreSQL is the server named by TRIALZONE_TEST_PG_URL (default: the local one); each test gets
its own schema, dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine, dispose, upgrade_async
from app.ledger import Ledger

PG_URL = os.environ.get("TRIALZONE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
FEATURES = {"cutout": "Smart cutout", "removal": "Smart removal"}
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pg_dsn(url: str = PG_URL) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@dataclass
class Database:
    """Where one test's ledger lives; ``engine()`` may be called again (other pools, processes)."""

    kind: str
    url: str
    schema: str | None = None

    def engine_kwargs(self, **kwargs) -> dict:
        if self.schema:
            kwargs["connect_args"] = {"server_settings": {"search_path": self.schema}}
        return kwargs

    def engine(self, **kwargs) -> AsyncEngine:
        return create_engine(self.url, **self.engine_kwargs(**kwargs))


async def make_database(kind: str, folder: Path) -> Database:
    if kind == "sqlite":
        return Database(kind, f"sqlite+aiosqlite:///{folder}/ledger.db")
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_dsn())
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    return Database(kind, PG_URL, schema)


async def drop_database(database: Database) -> None:
    if database.schema:
        conn = await asyncpg.connect(pg_dsn())
        try:
            await conn.execute(f"DROP SCHEMA {database.schema} CASCADE")
        finally:
            await conn.close()


@dataclass
class Clock:
    """The ledger's injected clock; tests move it forward."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 10, 4, 0, tzinfo=timezone.utc))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(params=BACKENDS)
async def db(request, tmp_path) -> Database:
    database = await make_database(request.param, tmp_path)
    yield database
    await drop_database(database)


@pytest.fixture
async def engine(db) -> AsyncEngine:
    engine = db.engine()
    await upgrade_async(engine)
    yield engine
    await dispose(engine)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(engine, clock) -> Ledger:
    return Ledger(engine, clock=clock, feature_titles=FEATURES)
