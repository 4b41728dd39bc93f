"""Alembic, driven from code: one migration history per service, no alembic.ini.

A service's `migrations/env.py` calls `run_env(metadata)`; `upgrade()` runs them.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text

from services.runtime.db import create_database_engine, is_sqlite


def alembic_config(database_url: str, script_location: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, script_location: Path, revision: str = "head") -> None:
    """Brings the database at `database_url` to `revision` (the latest by default)."""
    command.upgrade(alembic_config(database_url, script_location), revision)


# Any fixed number: each service has its own database, so one key serves all.
MIGRATION_LOCK_KEY = 0x41_53_41_4E  # "ASAN"


def run_env(metadata: MetaData) -> None:
    """Body of every service's migrations/env.py (online mode only)."""
    database_url = context.config.attributes["database_url"]
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
                render_as_batch=is_sqlite(database_url),
                compare_type=True,
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # Replicas starting together (init containers) migrate one at a time; the
                    # lock ends with the transaction.
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                context.run_migrations()
    finally:
        engine.dispose()


def create_runtime_tables() -> None:
    """Creates the outbox, inbox and idempotency tables; for a service's first migration."""
    from alembic import op

    from services.runtime.db import new_metadata
    from services.runtime.tables import define_runtime_tables

    tables = define_runtime_tables(new_metadata())
    bind = op.get_bind()
    for table in (tables.outbox, tables.inbox, tables.idempotency_keys):
        table.create(bind)


def add_outbox_set_aside_columns() -> None:
    """Adds the outbox's `set_aside_at` and `last_error` where they are missing (a database made
    by a first migration older than them); for the revision that brings them to a service."""
    from alembic import op
    from sqlalchemy import Column, String, inspect

    from services.runtime.db import UtcDateTime

    present = {column["name"] for column in inspect(op.get_bind()).get_columns("outbox")}
    with op.batch_alter_table("outbox") as outbox:
        if "set_aside_at" not in present:
            outbox.add_column(Column("set_aside_at", UtcDateTime, nullable=True))
        if "last_error" not in present:
            outbox.add_column(Column("last_error", String(500), nullable=True))


def drop_outbox_set_aside_columns() -> None:
    from alembic import op

    with op.batch_alter_table("outbox") as outbox:
        outbox.drop_column("last_error")
        outbox.drop_column("set_aside_at")


# The setting by which the retention purge, alone, may delete audit records on PostgreSQL
# (`SET LOCAL`, in its own transaction): the trigger below refuses every other UPDATE and DELETE.
AUDIT_PURGE_SETTING = "asan.audit_purge"

_AUDIT_APPEND_ONLY_POSTGRESQL = (
    f"""
CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('{AUDIT_PURGE_SETTING}', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$
""",
    """
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
  FOR EACH ROW EXECUTE FUNCTION audit_records_append_only()
""",
    """
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
  FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only()
""",
)
# SQLite (local runs and tests) has no session settings for the purge to show: updates are
# refused, deletes left to the purge.
_AUDIT_APPEND_ONLY_SQLITE = """
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
  SELECT RAISE(ABORT, 'audit records are append-only: UPDATE refused');
END
"""


def create_audit_records_table() -> None:
    """Creates `audit_records` (services.runtime.audit) with the trigger that keeps it
    append-only; for the revision that brings the audit trail to a service."""
    from alembic import op

    from services.runtime.db import new_metadata
    from services.runtime.tables import define_runtime_tables

    bind = op.get_bind()
    define_runtime_tables(new_metadata()).audit_records.create(bind)
    if bind.dialect.name == "postgresql":
        for statement in _AUDIT_APPEND_ONLY_POSTGRESQL:
            op.execute(statement)
    elif bind.dialect.name == "sqlite":
        op.execute(_AUDIT_APPEND_ONLY_SQLITE)


def drop_audit_records_table() -> None:
    from alembic import op

    op.drop_table("audit_records")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_records_append_only()")


def schema_is_current(database_url: str, script_location: Path) -> bool:
    """True when the database is at the head revision of the service's migrations."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(database_url, script_location))
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    return current == set(script.get_heads())
