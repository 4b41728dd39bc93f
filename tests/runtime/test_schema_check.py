"""A server starts on a schema at its head, or at a revision it does not know (a newer release
migrated it: a rolling deploy is under way, docs/migrations.md); an older schema it refuses."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from services.payment.service import definition as payment
from services.runtime.migrations import schema_is_current, upgrade


def stamp(database_url: str, revision: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
    engine.dispose()


def test_a_schema_at_the_head_is_current(database_url: str) -> None:
    upgrade(database_url, payment.migrations)

    assert schema_is_current(database_url, payment.migrations)


def test_a_schema_a_newer_release_migrated_is_served(database_url: str) -> None:
    upgrade(database_url, payment.migrations)
    stamp(database_url, "0099_from_a_newer_release")

    assert schema_is_current(database_url, payment.migrations)


def test_an_older_schema_or_none_is_refused(database_url: str) -> None:
    upgrade(database_url, payment.migrations, "0006")
    assert not schema_is_current(database_url, payment.migrations)

    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    engine.dispose()
    assert not schema_is_current(database_url, payment.migrations)
