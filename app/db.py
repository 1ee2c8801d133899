"""Database plumbing shared by every part: engines, UTC timestamps, transactions, migrations.

One code path serves two databases. Transactions are plain functions over a synchronous
SQLAlchemy ``Connection``, run by ``run_write`` / ``run_read``:

* PostgreSQL: on the async engine through ``AsyncConnection.run_sync`` (asyncpg underneath);
  callers take row locks (``SELECT ... FOR UPDATE``) where they need them.
* SQLite: whole, on a thread, through a synchronous twin of the async engine (same file, same
  pragmas). aiosqlite hops threads three or four times per statement, which made a ledger
  reserve+capture cost about 8 ms here; one hop per transaction brought it near 1 ms. Writers of
  this process queue on one thread (and commit in groups, see _GroupWriter); every write
  transaction starts with ``BEGIN IMMEDIATE``, so writers of other processes (and of the async
  engine) are serialised with them and wait on ``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Callable, TypeVar

import sqlalchemy
from sqlalchemy import DateTime, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

MIGRATIONS = Path(__file__).with_name("migrations")
_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON")
T = TypeVar("T")


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always returned tz-aware in UTC, on both databases
    (SQLite has no time zones, so it stores naive UTC; naive input is refused, not guessed)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a tz-aware one")
        value = value.astimezone(timezone.utc)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def create_engine(url: str, *, pool_size: int = 32, **kwargs: Any) -> AsyncEngine:
    """An async engine configured for this service; ``kwargs`` go to ``create_async_engine``.
    ``pool_size`` (PostgreSQL): connections kept open, see TRIALZONE_DATABASE_POOL_SIZE."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _make_parent(parsed.database)
        engine = create_async_engine(url, **kwargs)
        _sqlite_transactions(engine.sync_engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # Size the pool for the concurrency: a connection past pool_size is closed when it is
        # returned, so a smaller pool opens a server process per checkout under load (ledger
        # pairs/s at 32 clients: 168 with 10, 714 with 40). A few overflow ones absorb bursts.
        kwargs.setdefault("pool_size", pool_size)
        kwargs.setdefault("max_overflow", max(4, pool_size // 4))
    return create_async_engine(url, **kwargs)


def _make_parent(database: str | None) -> None:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_transactions(engine: Engine) -> None:
    """SQLAlchemy's documented recipe: take BEGIN away from the driver and emit our own,
    IMMEDIATE so the write lock is taken up front (no lock upgrade can fail half way)."""
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class _GroupWriter:
    """The one thread that runs this process's SQLite write transactions.

    Transactions that queue up while one runs are run together, each inside its own SAVEPOINT,
    under one ``BEGIN IMMEDIATE ... COMMIT`` (group commit): each still commits or rolls back
    whole, in queue order, and its caller hears back only after the COMMIT that made it durable.
    A COMMIT costs far more than a statement, so under load this multiplies throughput. The
    thread keeps its connection (a pool checkout per batch cost ~45 us), leaves checkpoints to
    a _Checkpointer, and hands a batch's outcomes to each event loop in one call (a
    concurrent.futures hand-off per transaction cost the loop thread more than the writer).
    """

    MAX_BATCH = 64

    def __init__(self, engine: Engine, checkpointer: "_Checkpointer"):
        self._engine = engine
        self._checkpointer = checkpointer
        self._queue: SimpleQueue = SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], args: tuple) -> asyncio.Future:
        """From a coroutine: the future of ``fn(conn, *args)``, run in the next batch."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put((future, fn, args))
        return future

    def close(self, wait: bool = True) -> None:
        self._queue.put(None)
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        conn: Connection | None = None
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get())
            jobs = [job for job in batch if job is not None and not job[0].cancelled()]  # (a benign race)
            if jobs:
                if conn is None:
                    conn = self._engine.connect()
                    conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint=0")  # _Checkpointer
                if not self._run(conn, jobs):
                    conn.close()  # after a failed batch, start again on a fresh connection
                    conn = None
            if None in batch:
                if conn is not None:
                    conn.close()
                return

    def _run(self, conn: Connection, jobs: list) -> bool:
        try:
            with conn.begin():
                conn.connection.driver_connection.execute("BEGIN IMMEDIATE")
                if len(jobs) == 1:  # alone: no savepoint, its exception rolls back the transaction
                    future, fn, args = jobs[0]
                    outcomes = [(future, fn(conn, *args), None)]
                else:
                    outcomes = [(future, *_isolated(conn, fn, args)) for future, fn, args in jobs]
        except BaseException as exc:  # the lone job failed, or COMMIT did: none of it happened
            _deliver([(future, None, exc) for future, _, _ in jobs])
            return False
        self._checkpointer.dirty = True
        _deliver(outcomes)
        return True


class _Checkpointer:
    """Copies the WAL back into the database file, on its own thread and connection.

    Left to SQLite, the checkpoint runs inside whichever COMMIT crosses 1,000 WAL pages, fsyncs
    included, on the writer's thread: it took about half of the writer's time under the ledger
    benchmark. A PASSIVE checkpoint here never blocks the writer; should the WAL still outgrow
    MAX_WAL_PAGES (readers pinning old pages), a TRUNCATE one waits for a gap and resets it.
    """

    INTERVAL = 0.5  # seconds between checkpoints while there are writes
    MAX_WAL_PAGES = 16_384  # 64 MiB of 4 KiB pages

    def __init__(self, engine: Engine):
        self._engine = engine
        self._stop = threading.Event()
        self.dirty = False
        self._thread = threading.Thread(target=self._serve, name="sqlite-checkpointer", daemon=True)
        self._thread.start()

    def close(self, wait: bool = True) -> None:
        self._stop.set()
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            if not self.dirty:
                continue
            self.dirty = False
            try:
                with self._engine.connect() as conn:
                    sqlite = conn.connection.driver_connection
                    _, wal_pages, _ = sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if wal_pages > self.MAX_WAL_PAGES:
                        sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except Exception:  # a busy or closing database: the next round tries again
                self.dirty = True


def _deliver(outcomes: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    """Settle each loop's futures in one call on that loop (they are not thread-safe)."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # that loop has closed: nobody is waiting
            pass


def _settle(outcomes: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _isolated(conn: Connection, fn: Callable[..., T], args: tuple) -> tuple[T | None, Exception | None]:
    # Straight to sqlite3: SQLAlchemy compiles its savepoint constructs anew on every use.
    sqlite = conn.connection.driver_connection
    sqlite.execute("SAVEPOINT job")
    try:
        result = fn(conn, *args)
    except Exception as exc:
        sqlite.execute("ROLLBACK TO SAVEPOINT job")
        sqlite.execute("RELEASE SAVEPOINT job")
        return None, exc
    sqlite.execute("RELEASE SAVEPOINT job")
    return result, None


class _Plan:
    """A Core statement compiled once for sqlite3 (SQLAlchemy's SQL and type processors), run
    straight on the DBAPI cursor: see ``execute``."""

    __slots__ = ("sql", "values", "row", "results")

    def __init__(self, dialect, statement, keys: tuple[str, ...]):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError("execute() takes no statement with Python-side column defaults")
        self.sql = str(compiled)
        getters = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            fixed = None if bind.required else bind.effective_value
            process = _memo(bind.type, bind.type.dialect_impl(dialect).bind_processor(dialect))
            getters.append((name, bind.required, fixed, process))
        self.values = getters
        columns = list(getattr(statement, "exported_columns", ()))
        self.row = _row_class(tuple(c.key for c in columns)) if columns else None
        self.results = [_memo(c.type, c.type.dialect_impl(dialect).result_processor(dialect, None)) for c in columns]

    def bind(self, params: dict[str, Any]) -> tuple:
        out = []
        for name, required, fixed, process in self.values:
            value = params[name] if required or name in params else fixed
            out.append(value if process is None else process(value))
        return tuple(out)

    def rows(self, raw: list[tuple]) -> list:
        make, results = self.row, self.results
        return [make(*(v if p is None else p(v) for v, p in zip(r, results))) for r in raw]


def _memo(type_, process):
    """Timestamps repeat within and across transactions (a request's ``now``) and converting one
    costs microseconds each way: remember the last few."""
    return functools.lru_cache(maxsize=256)(process) if process and isinstance(type_, UTCDateTime) else process


@functools.lru_cache(maxsize=64)
def _row_class(names: tuple[str, ...]):
    return collections.namedtuple("Row", names, rename=True)


class _Rows:
    """The part of a SQLAlchemy Result that transaction bodies use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list, rowcount: int):
        self._rows, self.rowcount = rows, rowcount

    def first(self):
        return self._rows[0] if self._rows else None

    def one(self):
        if len(self._rows) != 1:
            raise sqlalchemy.exc.NoResultFound("expected one row") if not self._rows else \
                sqlalchemy.exc.MultipleResultsFound("expected one row")
        return self._rows[0]

    def all(self) -> list:
        return self._rows

    def scalars(self) -> "_Rows":
        return _Rows([row[0] for row in self._rows], self.rowcount)


_plans: dict[tuple, _Plan] = {}


def execute(conn: Connection, statement, params: dict[str, Any] | list[dict[str, Any]] | None = None):
    """``conn.execute(statement, params)`` for hot transaction bodies, the same SQL either way.

    On PostgreSQL it is exactly that. On SQLite the statement runs on the sqlite3 cursor, compiled
    once per statement and parameter names: SQLAlchemy's execution path costs ~40 us a statement
    on this machine against ~8 us for sqlite3 itself, and the one writer thread runs every
    transaction of the process (bench/ledger.py). Errors are wrapped as SQLAlchemy's (an
    IntegrityError stays an IntegrityError). Rows have attribute access and ``_asdict``.
    """
    if conn.dialect.name != "sqlite":
        return conn.execute(statement, params)
    many = isinstance(params, list)
    first = (params[0] if many else params) or {}
    key = (statement, tuple(first))
    plan = _plans.get(key)
    if plan is None:
        if len(_plans) > 512:  # statements built per call (rare) must not grow this forever
            _plans.clear()
        plan = _plans[key] = _Plan(conn.dialect, statement, key[1])
    cursor = conn.connection.driver_connection.cursor()
    try:
        if many:
            cursor.executemany(plan.sql, [plan.bind(p) for p in params])
        else:
            cursor.execute(plan.sql, plan.bind(first))
        raw = cursor.fetchall() if plan.row is not None and cursor.description else []
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sqlalchemy.exc.DBAPIError.instance(plan.sql, params, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        rowcount = cursor.rowcount
        cursor.close()
    return _Rows(plan.rows(raw) if raw else [], rowcount)


@dataclass
class _SQLiteTwin:
    engine: Engine
    writer: _GroupWriter
    checkpointer: _Checkpointer
    readers: ThreadPoolExecutor  # WAL lets readers run beside the writer

    def close(self, wait: bool = True) -> None:
        self.writer.close(wait)
        self.checkpointer.close(wait)
        self.readers.shutdown(wait=wait)
        self.engine.dispose()


_twins: weakref.WeakKeyDictionary[Engine, _SQLiteTwin] = weakref.WeakKeyDictionary()


def _twin(engine: AsyncEngine) -> _SQLiteTwin:
    twin = _twins.get(engine.sync_engine)
    if twin is None:
        if engine.url.database in (None, "", ":memory:"):
            raise ValueError("SQLite in memory cannot be shared with a second engine: use a file")
        sync = sqlalchemy.create_engine(
            engine.url.set(drivername="sqlite"), connect_args={"check_same_thread": False},
            pool_size=5, max_overflow=5,
        )
        # The same recipe, but BEGIN is emitted by hand (_GroupWriter, _read_only): any
        # connection event listener makes SQLAlchemy dispatch events around every statement.
        event.listen(sync, "connect", _sqlite_connect)
        checkpointer = _Checkpointer(sync)
        twin = _SQLiteTwin(sync, _GroupWriter(sync, checkpointer), checkpointer, ThreadPoolExecutor(4, "sqlite-reader"))
        _twins[engine.sync_engine] = twin
        weakref.finalize(engine.sync_engine, twin.close, False)  # an engine dropped undisposed
    return twin


def _read_only(engine: Engine, fn: Callable[..., T], args: tuple) -> T:
    with engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("BEGIN")
        return fn(conn, *args)


async def run_write(engine: AsyncEngine, fn: Callable[..., T], *args: Any) -> T:
    """``fn(conn, *args)`` in one write transaction: committed when it returns, rolled back
    when it raises (the exception propagates)."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            return await conn.run_sync(fn, *args)
    return await _twin(engine).writer.submit(fn, args)


async def run_read(engine: AsyncEngine, fn: Callable[..., T], *args: Any, snapshot: bool = False) -> T:
    """``fn(conn, *args)`` in a read-only transaction. SQLite's deferred read transaction sees
    one snapshot throughout; ``snapshot`` asks PostgreSQL for the same (REPEATABLE READ)."""
    if engine.dialect.name != "sqlite":
        async with engine.connect() as conn:
            if snapshot:
                await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                return await conn.run_sync(fn, *args)
    twin = _twin(engine)
    return await asyncio.get_running_loop().run_in_executor(twin.readers, _read_only, twin.engine, fn, args)


async def dispose(engine: AsyncEngine) -> None:
    """Close the engine's connections, and the SQLite twin's threads and connections."""
    twin = _twins.pop(engine.sync_engine, None)
    if twin is not None:
        await asyncio.to_thread(twin.close)  # waits for the writer's last batch to commit
    await engine.dispose()


def _alembic_config(**attributes: Any):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes.update(attributes)
    return config


def _upgrade_on(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection=connection), "head")


async def upgrade_async(engine_or_url: AsyncEngine | str) -> None:
    """Migrate to the latest revision from inside a running loop (app startup, tests)."""
    if isinstance(engine_or_url, str):
        await asyncio.to_thread(upgrade, engine_or_url)  # Alembic's env runs its own loop there
        return
    async with engine_or_url.begin() as conn:
        await conn.run_sync(_upgrade_on)


def upgrade(url: str) -> None:
    """Migrate the database at ``url`` to the latest revision (``python -m app db upgrade``)."""
    from alembic import command

    config = _alembic_config()
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolates %
    command.upgrade(config, "head")
