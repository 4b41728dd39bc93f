"""Database access: one engine per service, short transactions, the event loop never blocked.

Service code is synchronous SQLAlchemy; the gRPC servicers (asyncio) call
`await database.run(unit_of_work)`, which runs the unit of work in one transaction. A read
that changes nothing calls `await database.read(read)` instead: Core statements on a
connection, no ORM session, no write transaction.

Where they run. In a server on PostgreSQL, on the event loop (`use_event_loop`): the unit's
synchronous code runs in a greenlet over asyncpg's asyncio connections (SQLAlchemy's asyncio
extension), so that a call waits on the database without a thread; reads take a pool of
their own in autocommit (no BEGIN and COMMIT round trips). Under load the hop to a thread and
back cost a quarter of a millisecond a call, and asyncpg's protocol, written in Cython, costs
less CPU per statement than psycopg's. On SQLite, units run on a small thread pool (sqlite3
blocks), and reads in the loop itself on a connection of its own (a deferred BEGIN: a read of
a WAL database waits on no writer, and a primary-key read costs less than the hop to a
thread). Periodic batches (a purge, a sweep) use `run_in_thread` everywhere, so that no long
batch holds the loop. The event worker (nameko, eventlet) uses `database.transaction()`
directly, and the metrics collectors `read_sync`, on psycopg.

Connections: as many as threads, opened when the server starts (`warm`) and kept, as many
again in a burst; on PostgreSQL, the same again for the loop's units of work, and for its
reads. A PostgreSQL connection idle for IDLE_PING_SECONDS is pinged before it is used again,
one in steady use is not: a dead one fails its call (UNAVAILABLE, retryable) and the pool then
replaces every connection older than the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    ColumnElement,
    DateTime,
    MetaData,
    Select,
    Table,
    TypeDecorator,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.elements import Label

from services.runtime import tracing

T = TypeVar("T")

# Stable constraint names, so that migrations on SQLite (batch mode) and PostgreSQL agree.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def as_attributes(mapped: type[Any]) -> list[Label[Any]]:
    """A mapped class's columns under its attribute names (payment's column `metadata` is
    `caller_metadata`), so that a Core row reads as the ORM object does, at a fraction of the
    cost of loading one: for rows that are only read."""
    return [attribute.columns[0].label(attribute.key) for attribute in inspect(mapped).column_attrs]


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# A PostgreSQL connection idle for longer is pinged before it is used again.
IDLE_PING_SECONDS = 2.0
# Execution option of the connections `Database.read` uses.
_READ_ONLY = "asan_read_only"


def create_database_engine(url: str | URL, *, pool_size: int = 5) -> Engine:
    """An engine with the settings every service wants: WAL and serialised writers on SQLite,
    idle connections pinged on PostgreSQL. The pool keeps `pool_size` connections (and opens
    as many again for a burst, closed when returned)."""
    url = make_url(url)
    if is_sqlite(url):
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, pool_size=pool_size, max_overflow=pool_size)
        _configure_sqlite(engine)
        return engine
    # A bounded connect, so that a partitioned database makes health NOT_SERVING instead of hanging it.
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"connect_timeout": 5},
    )
    _ping_when_idle(engine)
    return engine


def loop_url(url: str | URL) -> URL:
    """The URL of a PostgreSQL database for the event loop's engine (asyncpg), from the one the
    service is configured with (psycopg's): the same server, user and options, libpq's
    `sslmode` given as asyncpg's `ssl`, which takes the same values."""
    url = make_url(url).set(drivername="postgresql+asyncpg")
    if "sslmode" in url.query:
        url = url.update_query_dict({"ssl": url.query["sslmode"]}).difference_update_query(["sslmode"])
    return url


def create_loop_engine(url: str | URL, *, pool_size: int = 5, autocommit: bool = False) -> AsyncEngine:
    """An engine of a server's units of work or reads on PostgreSQL (`Database.use_event_loop`):
    asyncpg, whose protocol is written in Cython, on the event loop; `pool_size` connections,
    as many again for a burst, idle ones pinged as the threads' are."""
    engine = create_async_engine(
        loop_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"timeout": 5},
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    _ping_when_idle(engine.sync_engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pre-ping costs a round trip on every checkout; a connection in steady use
    needs none (SQLAlchemy's recipe for pessimistic disconnects, on idle connections only)."""

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool replaces the connection and tries again.
            raise DisconnectionError(f"an idle connection no longer answers: {error}") from error


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            # A read takes no lock: in WAL mode it reads a snapshot while a writer goes on.
            connection.exec_driver_sql("BEGIN")
            return
        # Take the write lock up front: two deferred transactions that both read and then
        # write would fail with "database is locked" instead of waiting their turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class TransactionObserver(Protocol):
    """Told of each transaction `Database.run` commits in the current call (the audit trail,
    services.runtime.audit): it may write in the transaction before it commits."""

    def before_commit(self, session: Session, result: object) -> None: ...

    def committed(self) -> None: ...

    def replayed(self) -> None:
        """The call is a retry, answered with the first call's result (services.runtime.idempotency)."""


# The observer of the current call's transactions, if any; set by an interceptor.
transaction_observer: ContextVar[TransactionObserver | None] = ContextVar(
    "transaction_observer", default=None
)


class Database:
    """A service's database: engine, sessions and the threads that run them."""

    def __init__(self, url: str | URL, *, threads: int = 4) -> None:
        self.url = make_url(url)
        self.threads = threads
        self.engine = create_database_engine(self.url, pool_size=threads)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL, once a server calls `use_event_loop`: units and reads on that loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_engine: AsyncEngine | None = None
        self._loop_sessions: async_sessionmaker[AsyncSession] | None = None
        self._loop_reads: AsyncEngine | None = None
        # SQLite: the engine and connection the event loop reads on, made by the first read.
        self._sqlite_reads: Engine | None = None
        self._loop_connection: Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")
        # The database's span attributes (OpenTelemetry's database conventions).
        self._span_attributes = {
            "db.system.name": self.engine.dialect.name,
            "db.namespace": self.url.database or "",
        }

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def use_event_loop(self) -> None:
        """Runs `run` and `read` on the running event loop from now on (PostgreSQL; a server
        calls it as it starts): over asyncpg, a unit of work awaits the database without a
        thread, and reads use a pool of their own in autocommit. Elsewhere, and from any other
        loop, they keep to the threads; batches of periodic work always do (`run_in_thread`),
        so that no long batch holds the loop."""
        if not self.is_postgresql or self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_engine = create_loop_engine(self.url, pool_size=self.threads)
        self._loop_sessions = async_sessionmaker(self._loop_engine, expire_on_commit=False)
        # Reads have connections of their own, in autocommit: a read never waits for a connection
        # that a write holds while it queues for a row lock (the receipt counter, say).
        self._loop_reads = create_loop_engine(self.url, pool_size=self.threads, autocommit=True)

    def _on_loop(self) -> bool:
        return self._loop is not None and asyncio.get_running_loop() is self._loop

    def _span(self) -> contextlib.AbstractContextManager[object]:
        """A transaction's span inside a traced operation (services.runtime.tracing)."""
        if tracing.SETUP.tracer is None:
            return contextlib.nullcontext()
        return tracing.outgoing_span("db.transaction", self._span_attributes)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error. Inside a
        traced operation it is a span of its own."""
        with self._span(), self.sessions.begin() as session:
            yield session

    def read_sync(self, read: Callable[[Session], T]) -> T:
        """`read(session)` now, on this thread, for statements that only read (a metrics
        collector): on SQLite in a deferred transaction, which waits on no writer, where
        `run_sync`'s takes the write lock and would queue a scrape behind every unit of work."""
        with (
            self.engine.connect().execution_options(**{_READ_ONLY: True}) as connection,
            connection.begin(),
            Session(connection) as session,
        ):
            return read(session)

    def run_sync(self, unit_of_work: Callable[[Session], T]) -> T:
        observer = transaction_observer.get()
        with self.transaction() as session:
            result = _observed(session, unit_of_work, observer)
        if observer is not None:
            observer.committed()
        return result

    async def run(self, unit_of_work: Callable[[Session], T]) -> T:
        """Runs `unit_of_work(session)` in one transaction: on the event loop (see
        `use_event_loop`), else on the database threads."""
        if not self._on_loop():
            return await self.run_in_thread(unit_of_work)
        assert self._loop_sessions is not None
        observer = transaction_observer.get()
        with self._span():
            async with self._loop_sessions.begin() as session:
                result = await session.run_sync(_observed, unit_of_work, observer)
        if observer is not None:
            observer.committed()
        return result

    async def run_in_thread(self, unit_of_work: Callable[[Session], T]) -> T:
        """`run` on the database threads: for batches (a purge, a sweep) that would hold the
        event loop for as long as their CPU work takes."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, self.run_sync, unit_of_work)
        return await loop.run_in_executor(self._executor, call)

    async def read(self, read: Callable[[Connection], T]) -> T:
        """`read(connection)` without a write transaction: Core statements that change nothing
        (see the module's docstring). An audited call (a transaction observer is set) reads in
        a transaction of `run` instead, since its audit record is written in the transaction of
        its read."""
        if transaction_observer.get() is not None:
            return await self.run(lambda session: read(session.connection()))
        if self._on_loop():
            assert self._loop_reads is not None
            async with self._loop_reads.connect() as connection:
                return await connection.run_sync(read)
        if self.is_postgresql:  # not on the server's loop: on a thread, as `read_sync`
            return await self.run_blocking(lambda: self.read_sync(lambda session: read(session.connection())))
        return self._read_on_loop(read)

    def _read_on_loop(self, read: Callable[[Connection], T]) -> T:
        """SQLite: `read` on the loop's own connection, held open (no pool checkout per read), in
        a deferred transaction that is rolled back; a connection that fails is opened again."""
        if self._loop_connection is None:
            if self._sqlite_reads is None:
                self._sqlite_reads = create_database_engine(self.url, pool_size=1)
            self._loop_connection = self._sqlite_reads.connect().execution_options(**{_READ_ONLY: True})
        connection = self._loop_connection
        try:
            with connection.begin() as transaction:
                result = read(connection)
                transaction.rollback()  # a read has nothing to commit
                return result
        except BaseException:
            if connection.invalidated or connection.closed:
                self._loop_connection = None
            raise

    def connections(self) -> dict[str, tuple[int, int, int]]:
        """Each of the process's pools of database connections, by name, as (in use, idle,
        most it opens): "threads", and once made, "units" and "reads" (the event loop's on
        PostgreSQL; on SQLite "reads" is the loop's one held connection)."""
        engines = {"threads": self.engine, "units": self._loop_engine, "reads": self._loop_reads}
        if self._sqlite_reads is not None:
            engines["reads"] = self._sqlite_reads
        counts = {}
        for name, engine in engines.items():
            if engine is None:
                continue
            pool = (engine.sync_engine if isinstance(engine, AsyncEngine) else engine).pool
            if isinstance(pool, QueuePool):
                # max_overflow as the engine was made with it (QueuePool has no public reader).
                counts[name] = (pool.checkedout(), pool.checkedin(), pool.size() + pool._max_overflow)
        return counts

    def warm(self) -> None:
        """Opens the pool's connections now rather than on the first calls; quietly does
        nothing more when the database does not answer (health says so)."""
        with contextlib.ExitStack() as opened:
            for _ in range(self.threads):
                try:
                    opened.enter_context(self.engine.connect())
                except Exception:
                    return

    async def run_retrying_on_conflict(self, unit_of_work: Callable[[Session], T]) -> T:
        """`run`, once more if a unique key was taken meanwhile: for a unit that reads a key and
        inserts it when missing (an idempotency key). On PostgreSQL two first calls can both find
        it missing; the loser's insert fails, and its second run finds the winner's row."""
        try:
            return await self.run(unit_of_work)
        except IntegrityError:
            return await self.run(unit_of_work)

    async def run_blocking(self, call: Callable[[], T]) -> T:
        """Runs `call` on the database threads, outside any transaction of this class: for
        connections a caller manages itself (the lock of a periodic flow)."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, functools.partial(context.run, call))

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def ping_async(self) -> bool:
        return await self.run_blocking(self.ping)

    def close(self) -> None:
        """Closes the connections; `aclose` in a server, whose loop's connections belong to its
        event loop."""
        self._executor.shutdown(wait=True)
        self.engine.dispose()
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection = None
        if self._sqlite_reads is not None:
            self._sqlite_reads.dispose()

    async def aclose(self) -> None:
        for engine in (self._loop_engine, self._loop_reads):
            if engine is not None:
                await engine.dispose()
        self.close()


# SQLite reports its transient failures as OperationalError, but also "no such table" and
# syntax errors, which are bugs: only these messages mean "try again".
_SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
)


def is_database_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what it was raised from) is the database being out of reach for a
    while, which a caller may retry: a refused or dropped connection, a connect or pool
    timeout, a server shutting down, a lock wait, a serialisation failure. A wrong query or a
    broken constraint is not: those are bugs or conflicts, and stay what they are."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # A socket that cannot reach the server (asyncpg's connect raises these unwrapped).
        if isinstance(current, DisconnectionError | PoolTimeoutError | OSError):
            return True
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return True
            sqlstate = getattr(current.orig, "sqlstate", None)
            if isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES:
                return True
            if isinstance(current.orig, AsyncAdapt_asyncpg_dbapi.InvalidCachedStatementError):
                # A prepared statement that a migration made stale: SQLAlchemy has dropped the
                # cached ones, so the call succeeds when repeated.
                return True
            if isinstance(current, OperationalError | InterfaceError):
                return _transient_on_its_backend(current)
        current = current.__cause__ or current.__context__
    return False


_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})


def _observed(
    session: Session, unit_of_work: Callable[[Session], T], observer: TransactionObserver | None
) -> T:
    """`unit_of_work`'s result, the observer told of it before the transaction commits."""
    result = unit_of_work(session)
    if observer is not None:
        observer.before_commit(session, result)
    return result


def _transient_on_its_backend(error: DBAPIError) -> bool:
    if type(error.orig).__module__.startswith("sqlite3"):
        text_of_error = str(error.orig).lower()
        return any(message in text_of_error for message in _SQLITE_TRANSIENT)
    # psycopg's OperationalError classes are all conditions of the server or the link
    # (_TRANSIENT_SQLSTATE_CLASSES).
    return True


def delete_in_batch(session: Session, table: Table, condition: ColumnElement[bool], limit: int | None) -> int:
    """Deletes the rows of `table` that meet `condition`, at most `limit` of them (all when None);
    returns how many. A caller purging many rows loops over short transactions of one batch each,
    so that no purge holds locks or grows the write-ahead log for long."""
    if limit is None:
        statement = delete(table).where(condition)
    else:
        key = list(table.primary_key.columns)
        chosen = select(*key).where(condition).limit(limit)
        # SQLite has no DELETE ... LIMIT by default: choose the rows by primary key instead.
        in_batch = key[0].in_(chosen) if len(key) == 1 else tuple_(*key).in_(chosen)
        statement = delete(table).where(in_batch)
    result = session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def take_next(
    session: Session, key: InstrumentedAttribute[Any], counter: InstrumentedAttribute[int], value: Any
) -> int:
    """The next number of the counter row whose `key` is `value` (a year's receipts or
    appeals), in one statement that increments it and returns the new number; the row stays
    locked until the caller's transaction ends, so numbers run without gaps and the caller
    takes one as late in its transaction as it can. The first of a key inserts the row: two
    firsts racing on PostgreSQL make one fail on the key, and its unit runs again."""
    mapped = counter.class_
    taken = session.execute(
        update(mapped).where(key == value).values({counter.key: counter + 1}).returning(counter)
    ).scalar_one_or_none()
    if taken is not None:
        return int(taken)
    session.execute(insert(mapped).values({key.key: value, counter.key: 1}))
    return 1


def lock_current_version(session: Session, current: Select[T], latest_version: Select[int]) -> T | None:
    """The current version of a row kept in versions (`current` selects the one with `valid_to`
    NULL), locked for a change that closes it and adds the next; None if there is none.
    `latest_version` selects the highest version number of the same key.

    On PostgreSQL a locking read that waited for a change of the same key re-checks the row it
    waited for, which that change closed, and cannot see the version the change added: it finds
    nothing, as for a key never seen. An update mask would then be merged onto nothing, and a
    change that closed what it found would leave the added version current beside its own. A
    new statement sees the added version, so the read is made again as long as the versions
    grew meanwhile. SQLite runs one writer at a time: the first read finds the current row."""
    locked = current.with_for_update()
    seen = session.scalar(latest_version)
    while (row := session.scalars(locked).first()) is None:
        latest = session.scalar(latest_version)
        if latest == seen:
            return None
        seen = latest
    return row


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back as an aware UTC datetime on every backend
    (SQLite has no time zones and would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
