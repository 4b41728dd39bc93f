"""Periodic tasks: work a service's server does every interval, in one replica at a time.

A service declares its tasks in `register` (see services.runtime.server); the runtime runs
each in the server process: the first run after a random part of the interval, then every
interval ± 10 %, so that replicas started together do not contend on every round. A run that
fails is logged and counted, and the next one comes at the next interval.

One replica at a time, by a PostgreSQL advisory lock keyed by the service and the task
(`lock_key`); a replica that does not get it skips the round. What the lock must cover decides
the kind of task:

- `PeriodicTask`: the work is one transaction. The transaction first takes
  `pg_try_advisory_xact_lock`, which ends with it: it cannot outlive the run, and it works
  through a transaction-pooling proxy (PgBouncer).
- `PeriodicFlow`: the work spans several transactions, or awaits an outside party between
  them (payment asks the acquirer, then records the answer). A transaction lock would end at
  the first commit, and one transaction held open across an outside call would hold its row
  locks too. The flow holds a session-level `pg_try_advisory_lock` on a connection of its own,
  taken out of the pool, for the whole run; the lock ends when that connection closes, so a
  replica that dies mid-run frees it. (A lease row would need a table and a migration in every
  service, and an expiry to tune against the longest run and clock skew.)

The lock saves duplicate work; it does not make the work correct. Task bodies still lock the
rows they change: a lock connection lost mid-run (a database failover) lets another replica
start before the first has finished.

On SQLite (one machine, one process per service) the lock is trivially held.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeAlias, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.runtime.db import Database, is_database_unavailable

log = logging.getLogger("asan.periodic")

R = TypeVar("R")

# Later runs come at the interval times a random factor in this range.
JITTER = (0.9, 1.1)


def _nothing(_: object) -> None:
    return None


@dataclass(frozen=True)
class PeriodicTask(Generic[R]):
    """Work done in one transaction, every `interval_seconds`, in one replica at a time."""

    # Names the task in metrics, logs and its lock: snake_case, stable across releases.
    name: str
    interval_seconds: float
    # The unit of work, run in the transaction that holds the lock.
    work: Callable[[Session], R]
    # Called on the event loop with what `work` returned, once the transaction has committed:
    # metrics and logs of the run, which must not count a run that rolled back.
    committed: Callable[[R], None] = _nothing


@dataclass(frozen=True)
class PeriodicFlow:
    """Work across several transactions or outside calls, every `interval_seconds`, in one
    replica at a time: the lock is held from the start of `work` to its end."""

    name: str
    interval_seconds: float
    work: Callable[[], Awaitable[object]]


Periodic: TypeAlias = PeriodicTask[Any] | PeriodicFlow


class Outcome(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    # Another replica held the lock: this one did nothing.
    SKIPPED = "skipped"


def lock_key(service: str, task: str) -> int:
    """The advisory lock key of a task: a stable signed 64-bit hash of service and task name
    (Python's hash() changes from process to process)."""
    digest = hashlib.sha256(f"{service}/{task}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PeriodicMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "asan_periodic_task_runs_total",
            "Rounds of a periodic task by outcome: success, failure, or skipped while another "
            "replica held its lock.",
            ["task", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "asan_periodic_task_duration_seconds",
            "Time a periodic task ran while holding its lock (successes and failures).",
            ["task"],
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
        )
        self.last_success = Gauge(
            "asan_periodic_task_last_success_timestamp_seconds",
            "When a periodic task last ran to the end in this replica (Unix time).",
            ["task"],
            registry=registry,
        )

    def declare(self, task: str) -> None:
        """Every outcome of a task is exported from the start, at zero."""
        for outcome in Outcome:
            self.runs.labels(task, outcome.value)
        self.duration.labels(task)


class _Skipped:
    """What a task's transaction returns when another replica holds the lock."""


_SKIPPED = _Skipped()


class PeriodicRunner:
    """Runs the periodic tasks of one service on its database."""

    def __init__(self, service: str, database: Database, registry: CollectorRegistry) -> None:
        self.service = service
        self.database = database
        self.metrics = PeriodicMetrics(registry)

    def declare(self, task: Periodic) -> None:
        """Exports the task's metrics before its first run."""
        self.metrics.declare(task.name)

    async def run_forever(self, task: Periodic) -> None:
        """Runs `task` every interval (with jitter) until cancelled."""
        # Jitter spreads load; it needs no unpredictability.
        await asyncio.sleep(random.uniform(0, task.interval_seconds))  # noqa: S311
        while True:
            await self.run_once(task)
            await asyncio.sleep(task.interval_seconds * random.uniform(*JITTER))  # noqa: S311

    async def run_once(self, task: Periodic) -> Outcome:
        """One round of `task`: runs it if this replica gets the lock; never raises but to cancel."""
        started = time.perf_counter()
        try:
            ran = await self._run_locked(task)
        except Exception as error:
            if is_database_unavailable(error):
                # An outage, which health reports: one line, not a traceback per round.
                log.warning(
                    "periodic task failed: database unavailable; retrying next interval",
                    extra={"task": task.name, "error": type(error).__name__},
                )
            else:
                log.exception("periodic task failed; retrying next interval", extra={"task": task.name})
            outcome = Outcome.FAILURE
        else:
            outcome = Outcome.SUCCESS if ran else Outcome.SKIPPED
        self.metrics.runs.labels(task.name, outcome.value).inc()
        if outcome is not Outcome.SKIPPED:
            self.metrics.duration.labels(task.name).observe(time.perf_counter() - started)
        if outcome is Outcome.SUCCESS:
            self.metrics.last_success.labels(task.name).set(time.time())
        return outcome

    async def _run_locked(self, task: Periodic) -> bool:
        key = lock_key(self.service, task.name)
        if isinstance(task, PeriodicFlow):
            async with self._session_lock(key) as held:
                if held:
                    await task.work()
                return held
        result = await self.database.run_in_thread(
            lambda session: self._in_locked_transaction(session, key, task)
        )
        if isinstance(result, _Skipped):
            return False
        task.committed(result)
        return True

    def _in_locked_transaction(self, session: Session, key: int, task: PeriodicTask[R]) -> R | _Skipped:
        if (
            self.database.is_postgresql
            and not session.execute(select(func.pg_try_advisory_xact_lock(key))).scalar_one()
        ):
            return _SKIPPED
        return task.work(session)

    @asynccontextmanager
    async def _session_lock(self, key: int) -> AsyncIterator[bool]:
        """Yields whether this replica holds the lock `key` until the block ends."""
        if not self.database.is_postgresql:
            yield True
            return
        connection = await self.database.run_blocking(lambda: self._try_session_lock(key))
        if connection is None:
            yield False
            return
        try:
            yield True
        finally:
            await self.database.run_blocking(lambda: _release(connection, key))

    def _try_session_lock(self, key: int) -> Connection | None:
        """A connection of its own holding the lock, or None if another session holds it."""
        connection = self.database.engine.connect()
        try:
            # Out of the pool: the lock must end with this connection, never ride along with a
            # pooled one into a later unit of work (a rollback does not release it).
            connection.detach()
            held = bool(connection.execute(select(func.pg_try_advisory_lock(key))).scalar_one())
            # No transaction stays open while the lock is held (idle-in-transaction timeouts).
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if not held:
            connection.close()
            return None
        return connection


def _release(connection: Connection, key: int) -> None:
    try:
        connection.execute(select(func.pg_advisory_unlock(key)))
        connection.commit()
    except Exception as error:
        # Closing the connection below ends its session, and the lock with it. A database
        # outage has ended it already: one line, no traceback.
        log.warning(
            "could not release a periodic task's lock; closing its connection",
            exc_info=not is_database_unavailable(error),
            extra={"error": type(error).__name__},
        )
    finally:
        connection.close()
