"""One process of the scale-out test: reserve+capture for one user as fast as it can.

    python tests/ledger/hammer.py URL SCHEMA|- USER ATTEMPTS CONCURRENCY NOW_ISO GO_FILE

Prints "ready" once its engine is connected, starts when GO_FILE appears, then prints a JSON
line {"ok": captured, "short": refused}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta

from sqlalchemy import text

from app.db import create_engine, dispose, run_read
from app.errors import InsufficientTokens
from app.ledger import Ledger


async def main(url: str, schema: str, user: str, attempts: int, concurrency: int, now_iso: str, go: str) -> None:
    kwargs = {"connect_args": {"server_settings": {"search_path": schema}}} if schema != "-" else {}
    engine = create_engine(url, **kwargs)
    now = datetime.fromisoformat(now_iso)
    ledger = Ledger(engine, clock=lambda: now)
    await run_read(engine, lambda c: c.execute(text("SELECT 1")).all())
    print("ready", flush=True)
    while not os.path.exists(go):
        await asyncio.sleep(0.005)

    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            try:
                hold = await ledger.reserve(user, 31_000, operation_id=f"p{os.getpid()}-{i}", feature="cutout",
                                            deadline=now + timedelta(minutes=5))
            except InsufficientTokens:
                return "short"
            await ledger.capture(hold.id)
            return "ok"

    results = await asyncio.gather(*(one(i) for i in range(attempts)))
    print(json.dumps({"ok": results.count("ok"), "short": results.count("short")}), flush=True)
    await dispose(engine)


if __name__ == "__main__":
    url, schema, user, attempts, concurrency, now_iso, go = sys.argv[1:]
    asyncio.run(main(url, schema, user, int(attempts), int(concurrency), now_iso, go))
