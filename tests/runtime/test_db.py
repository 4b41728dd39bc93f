from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

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
