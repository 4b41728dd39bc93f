"""Agro's migrations make exactly the tables its code declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from services.agro.service import definition
from services.runtime.migrations import upgrade


def test_the_migration_makes_the_tables_the_service_declares(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agro.sqlite3'}"
    upgrade(url, definition.migrations)
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), definition.metadata)
    engine.dispose()

    assert differences == []
