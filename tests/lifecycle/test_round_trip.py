"""Every revision of every service upgrades from the one before and downgrades back with rows in
every table, and the rows survive both ways, minus what the downgrade removes (its own tables
and columns). On SQLite too: its ALTERs rebuild tables (batch mode), where rows are most at risk."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from services.runtime.db import create_database_engine
from services.runtime.migrations import alembic_config
from services.runtime.server import ServiceDefinition
from services.suite import definitions
from tests.lifecycle.rows import Row, canonical, columns, contents, fill, projected, reflect

SERVICES = definitions()


def revisions(definition: ServiceDefinition) -> list[tuple[str | None, str]]:
    """(down_revision, revision) from the first revision to the head."""
    script = ScriptDirectory.from_config(alembic_config("", definition.migrations))
    chain = []
    for revision in reversed(list(script.walk_revisions())):
        down = revision.down_revision
        assert down is None or isinstance(down, str), f"{definition.name} {revision.revision}: a merge"
        chain.append((down, revision.revision))
    return chain


def missing(expected: dict[str, list[Row]], found: dict[str, list[Row]]) -> dict[str, list[Row]]:
    """Rows of `expected` that `found` lacks, by table."""
    gaps = {}
    for table, rows in expected.items():
        present = {canonical(row) for row in found.get(table, [])}
        if lost := [row for row in rows if canonical(row) not in present]:
            gaps[table] = lost
    return gaps


@pytest.mark.parametrize("definition", SERVICES, ids=[d.name for d in SERVICES])
def test_every_revision_upgrades_and_downgrades_with_its_rows(
    definition: ServiceDefinition, database_url: str
) -> None:
    """Walks the chain once: at each revision's predecessor, rows in every table; up, more rows;
    down, and what the downgrade kept compared; up again. Rows of earlier steps stay in, so
    that later revisions meet the data of all the ones before."""
    config = alembic_config(database_url, definition.migrations)
    engine: Engine = create_database_engine(database_url)
    try:
        for step, (down, revision) in enumerate(revisions(definition)):
            where = f"{definition.name} {down or 'base'} -> {revision}"
            schema = reflect(engine)
            if down:
                fill(engine, schema, batch=2 * step)
            rows_before, columns_before = contents(engine, schema), columns(schema)

            command.upgrade(config, revision)
            schema = reflect(engine)
            assert missing(rows_before, projected(contents(engine, schema), columns_before)) == {}, where

            fill(engine, schema, batch=2 * step + 1)
            rows_at_revision = contents(engine, schema)
            command.downgrade(config, down or "base")
            schema = reflect(engine)
            assert columns(schema) == columns_before, f"{where}: the downgrade leaves another schema"
            kept = projected(rows_at_revision, columns_before)
            assert contents(engine, schema) == kept, f"{where}: rows changed by the downgrade"

            command.upgrade(config, revision)
            upgraded_again = projected(contents(engine, reflect(engine)), columns_before)
            assert missing(kept, upgraded_again) == {}, f"{where}: rows lost by the upgrade again"
    finally:
        engine.dispose()
