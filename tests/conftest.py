"""Fixtures every test may use: databases on SQLite and PostgreSQL, the AMQP transports.

Database tests take `database_url`, which runs them once on a fresh SQLite file and once
on a fresh PostgreSQL database when ASAN_TEST_POSTGRES_URL is set (skipped with the
reason otherwise). `amqp_uri` does the same for memory:// and RabbitMQ
(ASAN_TEST_AMQP_URI). `workers` starts event worker processes and stops them afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.databases import DROPPER, TEST_DATABASE_PREFIX, end_of_session
from tests.support.workers import WorkerProcess

# Servers and channels of the tests speak plaintext, as `make run`'s do, unless a test gives
# them certificates (tests/runtime/test_tls.py); set before any fixture builds an environment
# for a process of its own.
os.environ.setdefault("ASAN_TLS", "off")

POSTGRES_URL = os.environ.get("ASAN_TEST_POSTGRES_URL", "")
AMQP_URI = os.environ.get("ASAN_TEST_AMQP_URI", "")

POSTGRES_SKIP = "PostgreSQL tests need ASAN_TEST_POSTGRES_URL (set by .ci/run)"
RABBITMQ_SKIP = "RabbitMQ tests need ASAN_TEST_AMQP_URI (set by .ci/run)"


@pytest.fixture(autouse=True)
def _isolated_var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Local state (SQLite files, dev keys) of a test never touches the developer's var/."""
    monkeypatch.setenv("ASAN_VAR_DIR", str(tmp_path / "var"))


@pytest.fixture(scope="session", autouse=True)
def _databases_dropped_at_the_end() -> Iterator[None]:
    yield
    end_of_session()


@pytest.fixture
def new_database_url(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """Makes an empty database of the given backend ("sqlite" or "postgres"); a PostgreSQL
    one is dropped after the test, in the background (tests.support.databases)."""
    created: list[str] = []

    def make(backend: str, name: str = "svc") -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{name}-{uuid.uuid4().hex[:8]}.sqlite3'}"
        if not POSTGRES_URL:
            pytest.skip(POSTGRES_SKIP)
        database = f"{TEST_DATABASE_PREFIX}{name}_{uuid.uuid4().hex[:12]}"
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        admin.dispose()
        created.append(database)
        return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)

    yield make

    for database in created:
        DROPPER.drop(make_url(POSTGRES_URL), database)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    if backend == "postgres" and not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP)
    return backend


@pytest.fixture
def database_url(database_backend: str, new_database_url: Callable[[str, str], str]) -> str:
    """A fresh, empty database: SQLite, and PostgreSQL where configured."""
    return new_database_url(database_backend, "svc")


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def amqp_uri(request: pytest.FixtureRequest) -> str:
    """memory:// always, and RabbitMQ where configured. Tests using RabbitMQ must use
    unique exchange/queue names or clean up after themselves (the broker is shared)."""
    if request.param == "memory":
        return "memory://"
    if not AMQP_URI:
        pytest.skip(RABBITMQ_SKIP)
    return AMQP_URI


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts event worker processes (each ready before the next starts; `argv` for another
    entry point) and stops them after the test."""
    started: list[WorkerProcess] = []

    def start(targets: list[str], env: dict[str, str], argv: list[str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(targets, env, tmp_path / f"worker-{len(started)}.log", argv=argv)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for number, worker in enumerate(started):
        worker.terminate()
        # pytest shows a test's captured output only when it failed: then the workers' own
        # lines say what happened to the events (the log files go with the temporary folder).
        print(f"--- worker-{number}.log, last lines ---", *worker.output().splitlines()[-40:], sep="\n")
