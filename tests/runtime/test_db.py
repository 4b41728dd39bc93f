from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.runtime.db import Database


async def test_concurrent_writers_each_commit_once(database_url: str) -> None:
    database = Database(database_url, threads=4)
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
    database.close()


async def test_failed_unit_of_work_leaves_nothing_behind(database_url: str) -> None:
    database = Database(database_url)
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
    database.close()


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
        database.close()


async def test_a_unit_that_conflicts_again_on_its_second_run_fails(database_url: str) -> None:
    database = Database(database_url)
    keys = _keys_table(database)
    database.run_sync(lambda s: s.execute(insert(keys).values(id="k", owner="first")))
    attempts: list[int] = []

    def insert_taken_key(session: Session) -> None:
        attempts.append(len(attempts) + 1)
        session.execute(insert(keys).values(id="k", owner="me"))

    with pytest.raises(IntegrityError):
        await database.run_retrying_on_conflict(insert_taken_key)
    assert attempts == [1, 2]
    database.close()
