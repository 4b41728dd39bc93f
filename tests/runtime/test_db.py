from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from services.runtime.db import Database, is_database_unavailable, loop_url

# A server's database (use_event_loop): on PostgreSQL, units and reads on the test's loop over
# asyncpg; on SQLite, units on the threads. The threads' own path is the periodic work's
# (run_in_thread), tested with it.


async def test_concurrent_writers_each_commit_once(database_url: str) -> None:
    database = Database(database_url, threads=4)
    database.use_event_loop()
    metadata = MetaData()
    counter = Table("counter", metadata, Column("id", Integer, primary_key=True), Column("value", Integer))
    metadata.create_all(database.engine)
    database.run_sync(lambda s: s.execute(insert(counter).values(id=1, value=0)))

    def increment(session):  # type: ignore[no-untyped-def]
        query = select(counter.c.value).where(counter.c.id == 1).with_for_update()
        value = session.execute(query).scalar_one()
        session.execute(counter.update().where(counter.c.id == 1).values(value=value + 1))

    await asyncio.gather(*(database.run(increment) for _ in range(20)))
    assert database.run_sync(lambda s: s.execute(select(counter.c.value)).scalar_one()) == 20
    await database.aclose()


async def test_failed_unit_of_work_leaves_nothing_behind(database_url: str) -> None:
    database = Database(database_url)
    database.use_event_loop()
    metadata = MetaData()
    items = Table("items", metadata, Column("id", Integer, primary_key=True))
    metadata.create_all(database.engine)

    def insert_then_fail(session):  # type: ignore[no-untyped-def]
        session.execute(insert(items).values(id=1))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await database.run(insert_then_fail)
    assert database.run_sync(lambda s: s.execute(select(items)).all()) == []
    assert await database.ping_async()
    await database.aclose()


def _keys_table(database: Database) -> Table:
    metadata = MetaData()
    keys = Table("keys", metadata, Column("id", String(10), primary_key=True), Column("owner", String(10)))
    metadata.create_all(database.engine)
    return keys


async def test_a_unit_that_loses_a_race_for_a_unique_key_runs_once_more_and_finds_the_winner(
    new_database_url: Callable[[str, str], str],
) -> None:
    """On PostgreSQL two first calls can both find a key missing; only one insert can win."""
    url = new_database_url("postgres", "conflict")
    database = Database(url)
    database.use_event_loop()
    keys = _keys_table(database)
    rival = create_engine(url)
    attempts: list[int] = []

    def claim(session: Session) -> str:
        attempts.append(len(attempts) + 1)
        owner = session.execute(select(keys.c.owner).where(keys.c.id == "k")).scalar()
        if owner is not None:
            return str(owner)
        if len(attempts) == 1:  # the rival commits between this unit's read and its write
            with rival.begin() as connection:
                connection.execute(insert(keys).values(id="k", owner="rival"))
        session.execute(insert(keys).values(id="k", owner="me"))
        return "me"

    try:
        assert await database.run_retrying_on_conflict(claim) == "rival"
        assert attempts == [1, 2]
    finally:
        rival.dispose()
        await database.aclose()


async def test_a_unit_that_conflicts_again_on_its_second_run_fails(database_url: str) -> None:
    database = Database(database_url)
    database.use_event_loop()
    keys = _keys_table(database)
    database.run_sync(lambda s: s.execute(insert(keys).values(id="k", owner="first")))
    attempts: list[int] = []

    def insert_taken_key(session: Session) -> None:
        attempts.append(len(attempts) + 1)
        session.execute(insert(keys).values(id="k", owner="me"))

    with pytest.raises(IntegrityError):
        await database.run_retrying_on_conflict(insert_taken_key)
    assert attempts == [1, 2]
    await database.aclose()


# --- Reads ----------------------------------------------------------------------------------


async def test_a_read_answers_while_every_database_thread_is_busy(database_url: str) -> None:
    """Reads run on the event loop, not on the threads that periodic batches may hold."""
    database = Database(database_url, threads=2)
    database.use_event_loop()
    keys = _keys_table(database)
    database.run_sync(lambda s: s.execute(insert(keys).values(id="k", owner="first")))
    release = threading.Event()
    busy = [asyncio.ensure_future(database.run_blocking(release.wait)) for _ in range(database.threads)]
    try:
        owner = database.read(lambda c: c.execute(select(keys.c.owner).where(keys.c.id == "k")).scalar())
        assert await asyncio.wait_for(owner, timeout=5) == "first"
    finally:
        release.set()
        await asyncio.gather(*busy)
        await database.aclose()


async def test_a_read_sees_what_was_committed_since_the_last_one(database_url: str) -> None:
    """No snapshot is kept from one read to the next: SQLite's held connection, PostgreSQL's
    autocommit ones."""
    database = Database(database_url)
    database.use_event_loop()
    keys = _keys_table(database)

    def owner(connection: Connection) -> str | None:
        value = connection.execute(select(keys.c.owner).where(keys.c.id == "k")).scalar()
        return None if value is None else str(value)

    try:
        assert await database.read(owner) is None
        database.run_sync(lambda s: s.execute(insert(keys).values(id="k", owner="first")))
        assert await database.read(owner) == "first"
        database.run_sync(lambda s: s.execute(keys.update().values(owner="second")))
        assert await asyncio.gather(*(database.read(owner) for _ in range(20))) == ["second"] * 20
        with pytest.raises(ZeroDivisionError):
            await database.read(lambda connection: 1 / 0)
        assert await database.read(owner) == "second"  # a failed read leaves the next one unharmed
    finally:
        await database.aclose()


async def test_the_reads_connections_close_with_the_database(
    new_database_url: Callable[[str, str], str],
) -> None:
    url = new_database_url("postgres", "reads")
    database = Database(url)
    database.use_event_loop()
    await asyncio.gather(
        *(database.read(lambda c: c.execute(text("SELECT pg_sleep(0.05)"))) for _ in range(3)),
        *(database.run(lambda s: s.execute(text("SELECT pg_sleep(0.05)"))) for _ in range(3)),
    )
    database.engine.dispose()  # the threads' connections: what is left is the loop's
    assert _other_connections(url) >= 1
    await database.aclose()
    assert _other_connections(url) == 0


async def test_a_server_s_unit_of_work_answers_while_every_database_thread_is_busy(
    new_database_url: Callable[[str, str], str],
) -> None:
    """On PostgreSQL a server's units await the database on the event loop, not on a thread."""
    database = Database(new_database_url("postgres", "loop"), threads=2)
    database.use_event_loop()
    keys = _keys_table(database)
    release = threading.Event()
    busy = [asyncio.ensure_future(database.run_blocking(release.wait)) for _ in range(database.threads)]
    try:
        written = database.run(
            lambda s: s.execute(insert(keys).values(id="k", owner="loop").returning(keys.c.id)).scalar_one()
        )
        assert await asyncio.wait_for(written, timeout=5) == "k"
        assert database.run_sync(lambda s: s.execute(select(keys.c.owner)).scalar()) == "loop"
    finally:
        release.set()
        await asyncio.gather(*busy)
        await database.aclose()


async def test_a_lock_another_transaction_holds_is_unavailable_over_either_driver(
    new_database_url: Callable[[str, str], str],
) -> None:
    """55P03 (lock not available): psycopg raises it as OperationalError, asyncpg as a plain
    DBAPIError; both are the database being busy, which a caller may retry."""
    url = new_database_url("postgres", "locked")
    database = Database(url)
    keys = _keys_table(database)
    database.run_sync(lambda s: s.execute(insert(keys).values(id="k", owner="first")))

    def lock_now(session: Session) -> None:
        session.execute(select(keys).where(keys.c.id == "k").with_for_update(nowait=True)).all()

    holder = create_engine(url)
    try:
        with holder.begin() as connection:
            connection.execute(select(keys).with_for_update()).all()
            with pytest.raises(DBAPIError) as on_thread:
                await database.run(lock_now)
            database.use_event_loop()
            with pytest.raises(DBAPIError) as on_loop:
                await database.run(lock_now)
        assert type(on_loop.value.orig).__module__ != type(on_thread.value.orig).__module__
        assert is_database_unavailable(on_thread.value)
        assert is_database_unavailable(on_loop.value)
    finally:
        holder.dispose()
        await database.aclose()


async def test_a_statement_a_migration_made_stale_fails_once_as_unavailable_then_answers(
    new_database_url: Callable[[str, str], str],
) -> None:
    """A migration run by another process (a deploy's job) while the server runs changes a
    column the server's prepared statements return: the next call fails, retryable, and the
    one after it prepares afresh."""
    url = new_database_url("postgres", "stale")
    database = Database(url)
    database.use_event_loop()
    keys = _keys_table(database)
    database.run_sync(lambda s: s.execute(insert(keys).values(id="k", owner="first")))

    def owner(connection: Connection) -> str:
        return str(connection.execute(select(keys.c.owner).where(keys.c.id == "k")).scalar_one())

    migration = create_engine(url)
    try:
        assert await database.read(owner) == "first"
        with migration.begin() as connection:
            connection.execute(text("ALTER TABLE keys ALTER COLUMN owner TYPE text"))
        outcomes = []
        for _ in range(database.threads * 2 + 1):  # every pooled connection has the statement
            try:
                outcomes.append(await database.read(owner))
            except DBAPIError as error:
                assert is_database_unavailable(error), error
                outcomes.append("unavailable")
        assert outcomes[0] == "unavailable" and outcomes[-1] == "first", outcomes
    finally:
        migration.dispose()
        await database.aclose()


async def test_calls_cancelled_mid_statement_leave_the_loop_s_pools_serving(
    new_database_url: Callable[[str, str], str],
) -> None:
    """A call whose deadline passes (gRPC cancels its task) while its statement runs: the
    connection it held is dropped, not handed back mid-statement, and the calls after it are
    answered at once, by units and reads alike."""
    database = Database(new_database_url("postgres", "cancelled"), threads=2)
    database.use_event_loop()
    sleep = text("SELECT pg_sleep(5)")
    one = text("SELECT 1")
    try:
        for call in (database.run, database.read):
            slow = [
                asyncio.ensure_future(call(lambda c: c.execute(sleep))) for _ in range(2 * database.threads)
            ]
            await asyncio.sleep(0.3)
            for task in slow:
                task.cancel()
            outcomes = await asyncio.gather(*slow, return_exceptions=True)
            assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes), outcomes
            after = [call(lambda c: c.execute(one).scalar_one()) for _ in range(2 * database.threads)]
            assert await asyncio.wait_for(asyncio.gather(*after), timeout=3) == [1] * len(after)
    finally:
        await database.aclose()


def test_the_loop_s_url_is_asyncpg_s_with_the_same_options() -> None:
    url = loop_url("postgresql+psycopg://payment:secret@db.internal:6432/payment?sslmode=verify-full")
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.password, url.host, url.port) == ("payment", "secret", "db.internal", 6432)
    assert dict(url.query) == {"ssl": "verify-full"}


def _other_connections(url: str) -> int:
    """The connections to the database at `url` other than the one counting them."""
    counting = create_engine(url)
    try:
        with counting.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    finally:
        counting.dispose()
