"""`python -m services.<name> serve | migrate | worker`, run as a developer runs it."""

from __future__ import annotations

import os
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from services.payment.service import definition
from services.runtime.migrations import alembic_config
from tests.runtime.serversupport import run_cli


def migrate(database_url: str, tmp_path: Path) -> str:
    env = {**os.environ, "ASAN_VAR_DIR": str(tmp_path / "var"), "PAYMENT_DATABASE_URL": database_url}
    done = run_cli(env, "services.payment", "migrate")
    assert done.returncode == 0, done.stderr
    return done.stdout


def schema(database_url: str) -> tuple[set[str], str]:
    """The tables and the migration revision of the database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    return tables, revision


def test_migrate_creates_the_schema_and_is_idempotent(database_url: str, tmp_path: Path) -> None:
    head = ScriptDirectory.from_config(alembic_config(database_url, definition.migrations)).get_current_head()

    assert "payment: database at the latest migration" in migrate(database_url, tmp_path)
    tables, revision = schema(database_url)
    # Every table the service declares, the runtime's outbox, inbox and idempotency keys included.
    assert set(definition.metadata.tables) <= tables
    assert revision == head

    migrate(database_url, tmp_path)
    assert schema(database_url) == (tables, head)


def test_help_lists_the_three_commands(tmp_path: Path) -> None:
    done = run_cli({**os.environ, "ASAN_VAR_DIR": str(tmp_path / "var")}, "services.payment", "--help")

    assert done.returncode == 0
    for command in ("serve", "migrate", "worker"):
        assert command in done.stdout
    assert "usage: python -m services.payment" in done.stdout


def test_an_unknown_command_is_refused_with_the_usage(tmp_path: Path) -> None:
    done = run_cli({**os.environ, "ASAN_VAR_DIR": str(tmp_path / "var")}, "services.payment", "start")

    assert done.returncode == 2
    assert "invalid choice: 'start'" in done.stderr
    assert "usage: python -m services.payment" in done.stderr
