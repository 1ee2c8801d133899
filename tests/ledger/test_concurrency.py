"""Invariant 2: no overdraft, with many concurrent reservations in one process and across two."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from app.errors import InsufficientTokens
from app.ledger import HoldView

from .checks import assert_sound

USER = "user-1"
ROOT = Path(__file__).resolve().parents[2]


async def test_200_concurrent_reservations_never_overdraw(ledger, engine, clock):
    deadline = clock.now.replace(hour=5)
    results = await asyncio.gather(
        *(ledger.reserve(USER, 31_000, operation_id=f"op-{i}", feature="cutout", deadline=deadline)
          for i in range(200)),
        return_exceptions=True,
    )
    holds = [r for r in results if isinstance(r, HoldView)]
    refused = [r for r in results if isinstance(r, InsufficientTokens)]
    assert (len(holds), len(refused)) == (16, 184), [r for r in results if not isinstance(r, (HoldView,
                                                                                               InsufficientTokens))]
    balance = await ledger.balance(USER)
    assert (balance.available, balance.held) == (4_000, 496_000)
    await asyncio.gather(*(ledger.capture(h.id) for h in holds))
    balance = await ledger.balance(USER)
    assert (balance.available, balance.held) == (4_000, 0)
    await assert_sound(engine)


async def test_two_processes_hammering_one_user(db, ledger, engine, clock, tmp_path):
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [db.url, db.schema or "-", USER, "60", "20", clock.now.isoformat(), str(go)]
    workers = [
        await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "tests/ledger/hammer.py"), *args, env=env,
                                             stdout=asyncio.subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        assert (await asyncio.wait_for(worker.stdout.readline(), 60)).strip() == b"ready"
    go.touch()
    outputs = [await asyncio.wait_for(worker.communicate(), 120) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0]
    results = [json.loads(out) for out, _ in outputs]
    assert all(r["ok"] + r["short"] == 60 for r in results)
    assert sum(r["ok"] for r in results) == 16
    assert sum(r["short"] for r in results) == 120 - 16
    balance = await ledger.balance(USER)
    assert (balance.available, balance.held) == (4_000, 0)
    await assert_sound(engine)


async def test_a_call_that_fails_fails_alone(ledger, engine, clock):
    """Concurrent reservations share a transaction (SQLite's group commit, PostgreSQL's batched
    stored function): one that breaks in the database must not take the others down with it."""
    deadline = clock.now.replace(hour=5)
    users = [f"user-{i}" for i in range(12)]
    for user in users:
        await ledger.ensure_user(user)
    amounts = [31_000] * 11 + [2**63]  # the last does not fit a BIGINT
    results = await asyncio.gather(
        *(ledger.reserve(user, amount, operation_id=f"op-{i}", feature="cutout", deadline=deadline)
          for i, (user, amount) in enumerate(zip(users, amounts))),
        return_exceptions=True,
    )
    assert all(isinstance(r, HoldView) and r.available == 469_000 for r in results[:11]), results
    assert isinstance(results[11], Exception) and not isinstance(results[11], InsufficientTokens), results[11]
    captured = await asyncio.gather(*(ledger.capture(h.id) for h in results[:11]))
    assert {(h.status, h.available) for h in captured} == {("captured", 469_000)}
    assert (await ledger.balance(users[11])).available == 500_000
    await assert_sound(engine)
