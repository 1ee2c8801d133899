"""Ledger throughput: reserve+capture pairs per second with 1, 8 and 32 concurrent clients, on
SQLite and PostgreSQL, then `ledger audit` over what the run left behind.

    .venv/bin/python bench/ledger.py [--seconds 5] [--sqlite PATH] [--pg URL ...] [--only sqlite|postgres]

--pg may be given more than once, e.g. to compare TCP with a Unix socket
(postgresql+asyncpg://postgres@/test?host=/var/run/postgresql).

Each client is its own user (as in production, where users do not share balances); the
"1 user" column has every client hammer one user, which serialises on that user's row lock.
PostgreSQL runs in a scratch schema (bench_ledger), made for the run and dropped after it, twice:
as the service runs it (stored functions, batched: app/ledger/stored.py) and, as the baseline
measured in the same run, through the Python transaction bodies that SQLite uses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.engine import make_url  # noqa: E402

from app.db import create_engine, dispose, upgrade_async  # noqa: E402
from app.ledger import Ledger  # noqa: E402
from app.ledger.audit import audit  # noqa: E402

CLIENTS = (1, 8, 32)
PRICE = 31_000
PG_SCHEMA = "bench_ledger"
# How the service runs it (stored functions, batched), then the Python bodies as the baseline.
PG_VARIANTS = (("", None), (" (statements)", False))
DEFAULT_PG = os.environ.get("TRIALZONE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def _pairs_per_second(ledger: Ledger, users: list[str], clients: int, seconds: float) -> float:
    deadline = datetime.now(timezone.utc) + timedelta(hours=1)

    async def client(user: str) -> int:
        done = 0
        while time.perf_counter() < stop:
            hold = await ledger.reserve(user, PRICE, operation_id=uuid.uuid4().hex, feature="cutout",
                                        deadline=deadline)
            await ledger.capture(hold.id)
            done += 1
        return done

    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    done = await asyncio.gather(*(client(users[i % len(users)]) for i in range(clients)))
    return sum(done) / (time.perf_counter() - started)


async def _run(name: str, url: str, seconds: float, stored_functions: bool | None = None,
               **engine_kwargs) -> tuple[dict[str, float], list[str]]:
    engine = create_engine(url, **engine_kwargs)
    try:
        await upgrade_async(engine)
        now = datetime.now(timezone.utc)
        ledger = Ledger(engine, clock=lambda: now, welcome_gift_tokens=0, stored_functions=stored_functions)
        results = {}
        for clients in CLIENTS:
            for shared in ((False, True) if clients > 1 else (False,)):
                tag = f"{name}-{clients}-{'one' if shared else 'many'}-{time.time_ns()}"
                users = [tag] if shared else [f"{tag}-{i}" for i in range(clients)]
                for user in users:
                    await ledger.grant(user, kind="package", amount=10**15, source_ref=f"bench:{user}")
                await _pairs_per_second(ledger, users, clients, 0.3)  # connections, caches
                results[f"{clients}{'/1 user' if shared else ''}"] = await _pairs_per_second(
                    ledger, users, clients, seconds)
        return results, await audit(engine)
    finally:
        await dispose(engine)


async def run_postgres(url: str, seconds: float, stored_functions: bool | None = None):
    """_run on PostgreSQL in a scratch schema, made for the run and dropped after it."""
    await _pg_schema(url, f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE; CREATE SCHEMA {PG_SCHEMA}")
    try:
        return await _run("pg", url, seconds, stored_functions,
                          connect_args={"server_settings": {"search_path": PG_SCHEMA}})
    finally:
        await _pg_schema(url, f"DROP SCHEMA {PG_SCHEMA} CASCADE")


async def _pg_schema(url: str, sql: str) -> None:
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(user=parsed.username, password=parsed.password, database=parsed.database,
                                 host=parsed.query.get("host", parsed.host), port=parsed.port)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sqlite", help="database file (default: a fresh temporary one)")
    parser.add_argument("--pg", action="append", help="PostgreSQL URL (default: TRIALZONE_TEST_PG_URL or local)")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "postgres":
            path = args.sqlite or os.path.join(tmp, "bench.db")
            runs["SQLite"] = await _run("sqlite", f"sqlite+aiosqlite:///{path}", args.seconds)
        for url in [] if args.only == "sqlite" else args.pg or [DEFAULT_PG]:
            name = "PostgreSQL" + (f" ({make_url(url).query['host']})" if "host" in make_url(url).query else "")
            for label, stored_functions in PG_VARIANTS:
                runs[name + label] = await run_postgres(url, args.seconds, stored_functions)

    columns = [c for c in next(iter(runs.values()))[0]]
    print(f"\nreserve+capture pairs/s ({args.seconds:g} s per cell, {os.cpu_count()} CPUs)")
    width = max(len(name) for name in runs) + 2
    print(f"{'database':{width}}" + "".join(f"{c + ' clients':>19}" for c in columns))
    for name, (results, _) in runs.items():
        print(f"{name:{width}}" + "".join(f"{results[c]:>19,.0f}" for c in columns))
    failed = False
    for name, (_, problems) in runs.items():
        print(f"ledger audit ({name}): " + ("every invariant holds" if not problems else "FAILED"))
        for problem in problems:
            print("  " + problem)
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        import uvloop  # what uvicorn serves on, when installed
    except ImportError:
        sys.exit(asyncio.run(main()))
    sys.exit(uvloop.run(main()))
