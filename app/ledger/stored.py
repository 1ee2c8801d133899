"""Reserve and capture on PostgreSQL: stored functions (migration 0005), called in batches.

Why: through SQLAlchemy a reserve is six statements plus BEGIN and COMMIT, and a capture four
plus two, each a round trip and a pass through the driver; at 32 concurrent clients a
reserve+capture pair topped out near 500/s on two cores, and a call per operation to a stored
function only near 1,000/s (the client's CPU, then one commit each). So concurrent calls are
coalesced, as SQLite's writer does (app.db._GroupWriter): whatever arrives while a batch is
in flight goes out together as one call of ``ledger_reserve_many`` / ``ledger_capture_many``,
one transaction. Each element still does exactly what Ledger._reserve / Ledger._capture do
(same locks in the same order, same rows, same journal entries); the ledger tests hold both
paths to the same expectations. SQLite keeps the Python transaction bodies.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

from sqlalchemy import BigInteger, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import UTCDateTime

_TEXTS, _AMOUNTS, _TIMES = ARRAY(String), ARRAY(BigInteger), ARRAY(UTCDateTime)

RESERVE = (
    text("SELECT * FROM ledger_reserve_many(:u, :amt, :op, :feature, :deadline, :now, :month, :hid)")
    .bindparams(bindparam("u", type_=_TEXTS), bindparam("amt", type_=_AMOUNTS), bindparam("op", type_=_TEXTS),
                bindparam("feature", type_=_TEXTS), bindparam("deadline", type_=_TIMES),
                bindparam("now", type_=_TIMES), bindparam("month", type_=String), bindparam("hid", type_=_TEXTS))
    .columns(i=BigInteger, outcome=String, available=BigInteger, held=BigInteger, balance=BigInteger,
             pending_from=UTCDateTime)
)
RESERVE_FIELDS = ("u", "amt", "op", "feature", "deadline", "now", "hid")  # one per element; month is shared

CAPTURE = (
    text("SELECT * FROM ledger_capture_many(:hid, :now)")
    .bindparams(bindparam("hid", type_=_TEXTS), bindparam("now", type_=_TIMES))
    .columns(i=BigInteger, outcome=String, user_id=String, operation_id=String, feature=String, amount=BigInteger,
             created_at=UTCDateTime, deadline=UTCDateTime, available=BigInteger, next_expiry=UTCDateTime)
)
CAPTURE_FIELDS = ("hid", "now")


def supported(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


class Batcher:
    """Coalesces concurrent calls of one batch function into one call, one transaction.

    A call goes out at once while fewer than ``in_flight`` batches are running (so a quiet
    service adds no wait); otherwise it waits for the next batch, which takes everything queued
    up to ``max_batch``. If a batch fails as a whole (a deadlock the database broke, a lost
    connection), its elements are retried one by one, so that each caller hears of its own
    failure only. The function must return one row per element, numbered ``i`` from 1.
    """

    def __init__(self, engine: AsyncEngine, statement, fields: Sequence[str], shared: Sequence[str] = (), *,
                 max_batch: int = 64, in_flight: int = 2):
        self._engine = engine
        self._statement = statement
        self._fields = tuple(fields)
        self._shared = tuple(shared)
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._running = 0
        self._queue: list[tuple[dict[str, Any], asyncio.Future]] = []
        self._tasks: set[asyncio.Task] = set()

    async def call(self, params: dict[str, Any]) -> Row:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((params, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._queue and self._running < self._in_flight:
            # Calls that share a parameter (the carrier month) go together; others wait a turn.
            key = [self._queue[0][0][name] for name in self._shared]
            batch, rest = [], []
            for item in self._queue:
                same = [item[0][name] for name in self._shared] == key
                (batch if same and len(batch) < self._max_batch else rest).append(item)
            self._queue = rest
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[dict[str, Any], asyncio.Future]]) -> None:
        try:
            try:
                rows = await self._execute([params for params, _ in batch])
                outcomes: list[tuple[Row | None, BaseException | None]] = [(row, None) for row in rows]
            except DBAPIError as exc:
                if len(batch) == 1:
                    outcomes = [(None, exc)]
                else:
                    outcomes = [await self._alone(params) for params, _ in batch]
            for (_, future), (row, error) in zip(batch, outcomes):
                if future.done():
                    continue  # its caller went away; what the call did stands (the reaper sees holds)
                if error is None:
                    future.set_result(row)
                else:
                    future.set_exception(error)
        except BaseException as exc:  # cancelled at shutdown, or a bug: nobody waits forever
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            self._running -= 1
            self._dispatch()

    async def _alone(self, params: dict[str, Any]) -> tuple[Row | None, BaseException | None]:
        try:
            return (await self._execute([params]))[0], None
        except DBAPIError as exc:
            return None, exc

    async def _execute(self, elements: list[dict[str, Any]]) -> list[Row]:
        values = {name: [element[name] for element in elements] for name in self._fields}
        values.update({name: elements[0][name] for name in self._shared})
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # the call is the transaction
            rows = (await conn.execute(self._statement, values)).all()
        if len(rows) != len(elements):
            raise RuntimeError(f"a batch of {len(elements)} came back with {len(rows)} rows")
        return sorted(rows, key=lambda row: row.i)
