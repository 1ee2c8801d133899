"""The hand-written migration matches app/tables.py, and the operator commands work from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db import run_read
from app.tables import metadata

from .conftest import PG_URL, pg_dsn

ROOT = Path(__file__).resolve().parents[2]


async def test_migration_matches_tables(engine):
    diff = await run_read(engine, lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    assert diff == []


async def test_cli_upgrades_and_audits_from_any_directory(db, tmp_path):
    if db.kind == "sqlite":
        url, cleanup = f"sqlite+aiosqlite:///{tmp_path}/var/cli.db", None
    else:  # the CLI takes only a URL, so give it a database of its own
        name = f"ledger_cli_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(pg_dsn())
        await conn.execute(f"CREATE DATABASE {name}")
        await conn.close()
        url, cleanup = PG_URL.rsplit("/", 1)[0] + f"/{name}", name
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRIALZONE_DATABASE_URL": url}
    try:
        for command in (["db", "upgrade"], ["db", "upgrade"], ["ledger", "audit"]):
            done = subprocess.run([sys.executable, "-m", "app", *command], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        assert "every invariant holds" in done.stdout
    finally:
        if cleanup:
            conn = await asyncpg.connect(pg_dsn())
            await conn.execute(f"DROP DATABASE {cleanup} WITH (FORCE)")
            await conn.close()
