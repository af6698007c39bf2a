"""Database access: SQLModel over SQLAlchemy's async engine (aiosqlite or asyncpg).

Write transactions on SQLite begin IMMEDIATE, so two writers (two coroutines, or two processes
on one file) queue on the lock instead of failing when a read lock cannot be upgraded.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Table,
    create_engine,
    event,
    insert,
    make_url,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import as_utc
from services.common.driver_sql import DriverStatements

T = TypeVar("T")


class Committed(Protocol):
    """What an after-commit hook is handed: the transaction's info (a session's, or a
    Write's), where the work done in it left its notes (an event to relay, an audit record
    written)."""

    @property
    def info(self) -> dict[Any, Any]: ...


@dataclass
class Write:
    """One transaction of Database.write: a SQLAlchemy Core connection (sync API) for the
    work's reads, its writes queued by add(), and the notes for the after-commit hooks, as a
    session's info."""

    conn: Connection
    info: dict[Any, Any] = field(default_factory=dict)
    queued: list[tuple[UpdateBase, Mapping[str, Any] | None]] = field(default_factory=list)

    def add(self, statement: UpdateBase) -> None:
        """Queue one complete INSERT, UPDATE or DELETE (its values in it); the queued
        statements are sent in order when the work returns, and commit together or not at
        all."""
        self.queued.append((statement, None))

    def insert(self, table: Table, row: Mapping[str, Any]) -> None:
        """Queue the insert of one row (every column the table needs) into table: one
        statement per table, compiled once (SQLAlchemy's cache), the row its parameters."""
        statement = _INSERTS.get(table)
        if statement is None:
            statement = _INSERTS[table] = insert(table)
        self.queued.append((statement, row))


_INSERTS: dict[Table, Insert] = {}


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC, always hands back an aware UTC datetime (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Database:
    def __init__(self, url: str, *, service: str, pool_size: int = 10,
                 busy_timeout: float = 30.0) -> None:
        """pool_size (PostgreSQL only): connections kept for transactions, as many again in
        overflow, and half as many (at least one) for fetch_one's reads.
        busy_timeout (seconds, SQLite only): how long a statement waits for another
        process's lock on the file before failing with "database is locked"."""
        self.url = url
        self.service = service
        self.is_sqlite = url.startswith("sqlite")
        # SQL parameters are personal data (names, phones, holdings): keep them out of
        # exception messages, which reach logs and parked-event reasons
        kwargs: dict[str, Any] = {"hide_parameters": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": busy_timeout, "isolation_level": None}
            # transactions are explicit (transaction() commits or rolls back), so a returned
            # connection holds none: skip the pool's reset round trip
            kwargs["pool_reset_on_return"] = None
        else:
            # pinged on checkout by _ping_on_checkout (one round trip), not pool_pre_ping
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            self._sqlite_pragmas(int(busy_timeout * 1000))
        else:
            _ping_on_checkout(self.engine)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        self.after_commit_hooks: list[Callable[[Committed], None]] = []
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._write_lock_owner: asyncio.Task[Any] | None = None
        self._busy_ms = int(busy_timeout * 1000)
        # fetch_one: on PostgreSQL a pool of its own in autocommit (no BEGIN/ROLLBACK round
        # trips) and without the ping before each use (a read on a dropped connection is
        # tried once more instead); on a SQLite file, sqlite3 in a few threads of our own
        # (made on first use)
        self._reads: AsyncEngine | None = None
        if not self.is_sqlite:
            half = max(1, pool_size // 2)
            self._reads = create_async_engine(url, hide_parameters=True, pool_size=half,
                                              max_overflow=half, isolation_level="AUTOCOMMIT")
        self._sync_reads: _SqliteReader | None = None
        self._driver_statements: DriverStatements | None = None
        self._sync_writes: tuple[Engine, ThreadPoolExecutor] | None = None
        database = make_url(url).database if self.is_sqlite else None
        self._sqlite_file = database if database and database != ":memory:" else None

    def _sqlite_pragmas(self, busy_ms: int) -> None:
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            _writer_pragmas(dbapi_conn, busy_ms)

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Reads run in autocommit (each statement sees a WAL snapshot): no BEGIN/ROLLBACK
            # round trips through aiosqlite's thread, which cost as much as the query itself.
            if conn.get_execution_options().get("branch_write", False):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed on success, rolled back on any exception."""
        if self._write_lock is None or self._write_lock_owner is asyncio.current_task():
            async with self._transaction() as session:
                yield session
            return
        # SQLite has one writer at a time. Queue this process's writers here, where waiting
        # is cheap, instead of in SQLite's busy handler, which sleeps in growing steps;
        # busy_timeout still covers writers in other processes.
        async with self._write_lock:
            self._write_lock_owner = asyncio.current_task()
            try:
                async with self._transaction() as session:
                    yield session
            finally:
                self._write_lock_owner = None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            session.info["service"] = self.service
            await session.connection(execution_options={"branch_write": True})
            async with _begin(session):
                yield session
            for hook in self.after_commit_hooks:
                hook(session)

    async def write(self, work: Callable[[Write], T]) -> T:
        """Run work, which reads through `w.conn` (SQLAlchemy Core, sync API) and queues
        its writes with `w.insert(table, row)` and `w.add(statement)`; write what it
        queued, all or nothing; run the after-commit hooks with the Write; return what work
        returned. Any exception (from work, or a unique or foreign-key violation as
        sqlalchemy.exc.IntegrityError) leaves nothing written and is raised as is. work runs
        in a copy of the caller's context (principal, trace, the call's pending audit).

        For the hot writes, where the async session's unit of work and the per-statement
        hops cost several times the SQL (bench/README.md, "Per-call cost"):
        - on a SQLite file, work and the queued statements run in one thread hop, in a
          writer thread of our own (sqlite3 through SQLAlchemy's sync engine), in one
          BEGIN IMMEDIATE transaction under this process's write lock;
        - on PostgreSQL, work and the queued statements run in one transaction on a
          Core connection (no session, no unit of work). Folding the queue into one
          statement (data-modifying WITH clauses) was measured and did not pay
          (bench/README.md), so each queued statement is its own round trip.
        Do not call it from inside transaction() in the same task."""
        if self._sqlite_file is not None:
            if self._write_lock_owner is asyncio.current_task():
                raise RuntimeError("Database.write inside transaction() of the same task")
            assert self._write_lock is not None
            engine, pool = self._sync_writer()
            context = contextvars.copy_context()

            def run() -> tuple[Write, T]:
                with engine.begin() as conn:  # BEGIN IMMEDIATE (the "begin" listener)
                    return _run_write(conn, work)

            async with self._write_lock:
                future = asyncio.get_running_loop().run_in_executor(pool, context.run, run)
                try:
                    w, result = await asyncio.shield(future)
                except asyncio.CancelledError:
                    # keep the lock until the thread is done with the file
                    await asyncio.wait([future])
                    raise
        elif self.is_sqlite:  # in memory: through the session's connection
            async with self.transaction() as session:
                w, result = await session.run_sync(
                    lambda s: _run_write(s.connection(), work))
                session.info.update(w.info)  # the hooks see the session
            return result
        else:
            async with self.engine.begin() as aconn:
                w, result = await aconn.run_sync(_run_write, work)
        for hook in self.after_commit_hooks:
            hook(w)
        return result

    def _sync_writer(self) -> tuple[Engine, ThreadPoolExecutor]:
        if self._sync_writes is None:
            assert self._sqlite_file is not None
            engine = create_engine(
                make_url(self.url).set(drivername="sqlite"), hide_parameters=True,
                connect_args={"timeout": self._busy_ms / 1000, "isolation_level": None,
                              "check_same_thread": False},
                pool_size=1, max_overflow=0, pool_reset_on_return=None)
            busy_ms = self._busy_ms

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                _writer_pragmas(dbapi_conn, busy_ms)

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

            pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self.service}-writes")
            self._sync_writes = (engine, pool)
        return self._sync_writes

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session; nothing is committed."""
        async with self._sessions() as session:
            session.info["service"] = self.service
            # closing ends the transaction without expiring what was loaded
            yield session

    async def fetch_one(
        self, statement: Select[Any], params: Mapping[str, Any] | None = None
    ) -> Any | None:
        """The first row of one Core SELECT, or None: a named tuple whose fields are the
        selected columns' keys, values of the columns' Python types (aware UTC datetimes for
        UtcDateTime). For the hot single-row reads (a primary-key get on every call), where a
        session, the ORM, or even SQLAlchemy's connection and result machinery cost several
        times the query: SQLAlchemy compiles the statement once and supplies the type
        conversions (services/common/driver_sql.py); the driver runs it. On a SQLite file,
        sqlite3 connections of their own (query_only) in a small thread pool, one thread hop
        a read. On PostgreSQL, SQLAlchemy Core through an engine of its own in autocommit (no
        BEGIN/ROLLBACK round trips) and without the ping (a connection found dropped is thrown
        away and the read tried once more on a new one); a Row, with the same fields. (A bare
        asyncpg pool there measured no faster and, with backends terminated under load, handed
        out connections still busy with a cancelled read.) Measured: bench/README.md,
        "Per-call cost"."""
        if self._sqlite_file is not None:
            prepared = self._statements(self.engine.dialect)[statement]
            args = prepared.args(params)
            reader = self._sqlite_reader()
            raw = await asyncio.get_running_loop().run_in_executor(
                reader.pool, reader.fetch_one, prepared.sql, args)
            return None if raw is None else prepared.row(raw)
        engine = self._reads or self.engine  # self.engine: SQLite in memory (tests)
        for attempt in (1, 2):
            try:
                async with engine.connect() as conn:
                    return (await conn.execute(statement, params)).first()
            except sa_exc.DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def _statements(self, dialect: Dialect) -> DriverStatements:
        if self._driver_statements is None:
            self._driver_statements = DriverStatements(dialect)
        return self._driver_statements

    SYNC_READERS = 4

    def _sqlite_reader(self) -> _SqliteReader:
        if self._sync_reads is None:
            assert self._sqlite_file is not None
            self._sync_reads = _SqliteReader(self._sqlite_file, self._busy_ms,
                                             self.SYNC_READERS, self.service)
        return self._sync_reads

    async def reachable(self, timeout: float) -> bool:
        """True when the database answers a read of its schema within timeout seconds
        (a new connection when the pooled ones are gone; SQLite: the file can be read)."""
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as conn:
                await conn.execute(text("SELECT count(*) FROM alembic_version"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        if self._sync_writes is not None:
            engine, pool = self._sync_writes
            self._sync_writes = None
            pool.shutdown(wait=True)
            engine.dispose()
        if self._sync_reads is not None:
            reader, self._sync_reads = self._sync_reads, None
            reader.close()
        if self._reads is not None:
            await self._reads.dispose()
        await self.engine.dispose()


SQLITE_BUSY = ("database is locked", "database table is locked", "unable to open database file",
               "disk i/o error")


def is_unavailable(exc: BaseException) -> bool:
    """True when exc, or an exception that caused it, says the database could not be reached
    or is busy (a dropped or refused connection, a server shutting down or not yet accepting,
    too many connections, a pool with no free connection, a SQLite file locked by another
    process); False for errors in what was asked (constraints, SQL, our own bugs)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (sa_exc.DisconnectionError, sa_exc.TimeoutError,
                                asyncpg.PostgresConnectionError,
                                asyncpg.OperatorInterventionError,
                                asyncpg.InsufficientResourcesError,
                                asyncpg.ConnectionDoesNotExistError,
                                ConnectionError, socket.gaierror)):
            return True
        if isinstance(current, asyncpg.InterfaceError) and "closed" in str(current):
            return True
        if isinstance(current, asyncpg.ObjectNotInPrerequisiteStateError) and (
                "not currently accepting connections" in str(current)):
            return True  # ALTER DATABASE ... ALLOW_CONNECTIONS false, during maintenance
        if isinstance(current, sqlite3.OperationalError) and str(current).lower().startswith(
                SQLITE_BUSY):
            return True
        current = current.__cause__ or current.__context__
    return False


FRESH = "branch_fresh"


def _ping_on_checkout(engine: AsyncEngine) -> None:
    """A pooled PostgreSQL connection is pinged before each use, as pool_pre_ping does, so
    the first write after a database restart goes to a new connection instead of failing
    on a dead one; but with one round trip (an empty query), where SQLAlchemy's asyncpg ping
    costs three outside a transaction (BEGIN, the query, ROLLBACK: for pgbouncer's
    transaction mode, which is not used here). A dead connection is thrown away and the
    checkout tried again on a new one (sqlalchemy.exc.DisconnectionError); a connection
    just made is not pinged."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_dbapi_conn: Any, record: Any) -> None:
        record.info[FRESH] = True

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop(FRESH, False):
            return
        try:
            await_(dbapi_conn.driver_connection.fetchrow(";"))
        except Exception as exc:
            raise sa_exc.DisconnectionError("connection failed its ping") from exc


def _run_write(conn: Connection, work: Callable[[Write], T]) -> tuple[Write, T]:
    w = Write(conn)
    result = work(w)
    for statement, params in w.queued:
        conn.execute(statement, params)
    return w, result


@asynccontextmanager
async def _begin(session: AsyncSession) -> AsyncIterator[None]:
    try:
        yield
    except BaseException:
        await session.rollback()
        raise
    else:
        await session.commit()


def _writer_pragmas(dbapi_conn: Any, busy_ms: int) -> None:
    """A new SQLite connection of the engine or of Database.write's writer thread: WAL,
    commits that do not wait for the disk, foreign keys, and busy_ms of waiting for another
    process's lock."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_ms}")
    cur.close()


class _SqliteReader:
    """fetch_one's sqlite3 connections: one per thread of a small pool, each query_only,
    opened on the thread's first read and closed by close()."""

    def __init__(self, path: str, busy_ms: int, threads: int, service: str) -> None:
        self._path, self._busy_ms = path, busy_ms
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=f"{service}-reads")
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def fetch_one(self, sql: str, args: list[Any]) -> Any:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=self._busy_ms / 1000,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")  # these connections only read
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn.execute(sql, args).fetchone()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
