"""Alembic, driven from code: one migration history per service, no alembic.ini.

A service's `migrations/env.py` calls `run_env(metadata)`; `upgrade()` runs them. A revision
states its own DDL (`op.create_table`, `op.add_column`, as autogenerate writes them) and never
builds tables from the code's current definitions: what it makes must stay what it made when
it was written. tests/lifecycle checks that the revisions build what the code declares.
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
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Batch mode rebuilds a table by copying it and dropping the original, which
                # the foreign keys of rows in other tables would refuse; the pragma only takes
                # effect outside a transaction, hence on the driver's connection, before any.
                driver = connection.connection.driver_connection
                assert driver is not None
                driver.execute("PRAGMA foreign_keys=OFF")
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
                if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all()):
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken}")
    finally:
        engine.dispose()


# The helpers below are revisions' DDL shared by the services, frozen as the revision that
# brought each table wrote it (docs/migrations.md): never build them from the code's tables,
# and never change them; a later change of a table is a new revision with its own DDL.


def create_notice_table() -> None:
    """Creates the `notices` table (services.runtime.notices) as it was first made; for the
    revision that brings notices to a service."""
    import sqlalchemy as sa
    from alembic import op

    from services.runtime.db import UtcDateTime

    op.create_table(
        "notices",
        sa.Column("notice_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("resource_name", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("notice", sa.LargeBinary, nullable=True),
        sa.Column("mail_status", sa.String(10), nullable=True),
        sa.Column("mail_attempts", sa.Integer, nullable=False),
        sa.Column("mail_next_at", UtcDateTime, nullable=True),
        sa.Column("mail_data_at", UtcDateTime, nullable=True),
        sa.Column("mail_sent_at", UtcDateTime, nullable=True),
        sa.Column("mail_last_error", sa.String(500), nullable=True),
    )
    op.create_index("ix_notices_mail_due", "notices", ["mail_status", "mail_next_at"])


def drop_notice_table() -> None:
    from alembic import op

    op.drop_table("notices")


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
    """Creates `audit_records` (services.runtime.audit), as it was first made, with the trigger
    that keeps it append-only; for the revision that brings the audit trail to a service."""
    import sqlalchemy as sa
    from alembic import op

    from services.runtime.db import UtcDateTime

    op.create_table(
        "audit_records",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("actor_subject", sa.String(255), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=True),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("resource", sa.String(300), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_audit_records_agency_recorded", "audit_records", ["agency_code", "recorded_at", "id"])
    op.create_index("ix_audit_records_recorded_at", "audit_records", ["recorded_at"])
    bind = op.get_bind()
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
    """True when this code can serve the database: it is at the head revision of the service's
    migrations, or at a revision this code does not know, which a newer release has migrated to.
    During a rolling deploy the previous release keeps (re)starting against the schema the new
    one migrated; the expand/contract rule (docs/runbook.md) keeps that schema good for it."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(database_url, script_location))
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    if current == set(script.get_heads()):
        return True
    known = {revision.revision for revision in script.walk_revisions()}
    return bool(current) and not current & known
