"""Every service's migrations build exactly the tables its code declares: Alembic's autogenerate
comparison (what `alembic check` runs) finds nothing to add, drop or alter, on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.runtime.db import create_database_engine
from services.runtime.migrations import upgrade
from services.runtime.server import ServiceDefinition
from services.suite import definitions

SERVICES = definitions()


def differences(database_url: str, definition: ServiceDefinition) -> list[object]:
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            found: list[object] = compare_metadata(context, definition.metadata)
    finally:
        engine.dispose()
    return found


@pytest.mark.parametrize("definition", SERVICES, ids=[d.name for d in SERVICES])
def test_the_migrations_build_the_tables_the_code_declares(
    definition: ServiceDefinition, database_url: str
) -> None:
    upgrade(database_url, definition.migrations)

    assert differences(database_url, definition) == []
