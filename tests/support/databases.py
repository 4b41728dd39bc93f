"""Fresh databases for tests, cheaply: a service's database comes migrated from a template
(one per service, migrations head and test process), and a PostgreSQL database is dropped in
the background once its test is over.

Migrating is the expensive part of starting a service in a test (about a second on
PostgreSQL under load, for every test on it); `CREATE DATABASE ... TEMPLATE` takes a tenth
of that, and a SQLite file is copied. The result is the same schema: tests/lifecycle checks
that migrations build exactly the models' schema, and runs every revision itself.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from services.runtime.db import Database
from services.runtime.migrations import alembic_config, upgrade

# Prefix of every database the tests create on the shared server.
TEST_DATABASE_PREFIX = "asan_test_"


def _admin(url: URL) -> Engine:
    return create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")


class _Dropper:
    """Drops PostgreSQL databases on a thread of its own, so that a test does not wait for
    its databases' connections to end (DROP DATABASE ... WITH (FORCE) waits for them)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[URL, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def drop(self, server: URL, database: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="database-dropper", daemon=True)
                self._thread.start()
        self._queue.put((server, database))

    def finish(self) -> None:
        """Waits for the drops asked for so far (at the end of the test process)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=60)
            self._thread = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            server, database = item
            admin = _admin(server)
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            except Exception as error:  # a leftover database is no test's failure
                print(f"could not drop test database {database}: {error}")
            finally:
                admin.dispose()


DROPPER = _Dropper()


class _Templates:
    """Per test process: for each service's migrations at their head, a migrated SQLite file
    and a migrated PostgreSQL database (per server) to copy."""

    def __init__(self) -> None:
        self._heads: dict[Path, str] = {}
        self._files: dict[str, Path] = {}
        self._databases: dict[tuple[str, str], str] = {}
        self._directory: Path | None = None

    def _key(self, script_location: Path) -> str:
        head = self._heads.get(script_location)
        if head is None:
            script = ScriptDirectory.from_config(alembic_config("sqlite://", script_location))
            head = self._heads[script_location] = "+".join(sorted(script.get_heads()))
        return hashlib.sha1(f"{script_location.resolve()}:{head}".encode()).hexdigest()[:12]

    def sqlite_file(self, script_location: Path) -> Path:
        key = self._key(script_location)
        if key not in self._files:
            if self._directory is None:
                self._directory = Path(tempfile.mkdtemp(prefix="asan-templates-"))
            template = self._directory / f"{key}.sqlite3"
            upgrade(f"sqlite:///{template}", script_location)
            self._files[key] = template
        return self._files[key]

    def postgres_database(self, server: URL, script_location: Path) -> str:
        server = server.set(database="postgres")
        key = (server.render_as_string(hide_password=False), self._key(script_location))
        if key not in self._databases:
            name = f"{TEST_DATABASE_PREFIX}template_{key[1]}_{os.getpid()}"
            admin = _admin(server)
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
            finally:
                admin.dispose()
            upgrade(server.set(database=name).render_as_string(hide_password=False), script_location)
            self._databases[key] = name
        return self._databases[key]

    def remove(self) -> None:
        for (server, _), name in self._databases.items():
            DROPPER.drop(make_url(server), name)
        self._databases.clear()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        self._files.clear()


TEMPLATES = _Templates()
# Tests of one process run one at a time, but some start services from other threads.
_MIGRATING = threading.Lock()


def _is_fresh_postgres(url: URL) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables: int = connection.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
            ).scalar_one()
    finally:
        engine.dispose()
    return tables == 0


def _on_the_test_server(url: URL) -> bool:
    """Whether `url` names a database on ASAN_TEST_POSTGRES_URL's server itself, not through
    a test's proxy (which goes away with its test, templates being kept for the session)."""
    server = os.environ.get("ASAN_TEST_POSTGRES_URL")
    if not server or url.get_backend_name() != "postgresql" or not url.database:
        return False
    expected = make_url(server)
    return (url.host, url.port or 5432) == (expected.host, expected.port or 5432)


def end_of_session() -> None:
    """Drops the templates and waits for every drop asked for."""
    TEMPLATES.remove()
    DROPPER.finish()


def migrate(database_url: str, script_location: Path) -> None:
    """Brings the database at `database_url` to the head of `script_location`: an empty one
    becomes a copy of the template, any other is upgraded."""
    url = make_url(database_url)
    with _MIGRATING:
        if url.get_backend_name() == "sqlite" and url.database:
            path = Path(url.database)
            if not path.exists() or path.stat().st_size == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(TEMPLATES.sqlite_file(script_location), path)
                return
        elif _on_the_test_server(url) and _is_fresh_postgres(url):
            template = TEMPLATES.postgres_database(url, script_location)
            admin = _admin(url)
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE "{url.database}"'))
                    connection.execute(text(f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"'))
            finally:
                admin.dispose()
            return
    upgrade(database_url, script_location)


def waits_for_a_lock(database: Database) -> bool:
    """Whether a transaction on `database` (PostgreSQL) waits for a lock another one holds."""
    with database.engine.connect() as connection:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)
