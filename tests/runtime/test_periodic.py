"""Periodic tasks: run by the server every interval, one replica at a time through a database
lock, failures logged and counted, the next round run regardless.

Replicas are real servers (the payment service with test tasks in place of its own) sharing one
database; a task records when each replica starts and ends it, so that overlap would show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from services.payment.service import definition as payment
from services.runtime.periodic import Periodic, PeriodicFlow, PeriodicTask, lock_key
from services.runtime.server import Background, ServiceDefinition, ServiceRuntime
from tests.support.servers import RunningService, running_service
from tests.support.waiting import eventually

TASK = "test_task"


def metric(service: RunningService, name: str, **labels: str) -> float:
    """The sample `name` with `labels` on the service's /metrics; 0 when absent."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(service.metrics_text())
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def runs(service: RunningService, outcome: str) -> float:
    return metric(service, "asan_periodic_task_runs_total", task=TASK, outcome=outcome)


@dataclass
class Journal:
    """What the replicas did: (replica, start, end) of every run, and who is running now."""

    runs: list[tuple[str, float, float]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    # A test holds the task (the run in progress waits) until it releases it.
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, replica: str) -> float:
        with self.lock:
            self.running.add(replica)
        return time.monotonic()

    def ended(self, replica: str, started: float) -> None:
        with self.lock:
            self.running.discard(replica)
            self.runs.append((replica, started, time.monotonic()))

    def overlaps(self) -> list[tuple[tuple[str, float, float], tuple[str, float, float]]]:
        ordered = sorted(self.runs, key=lambda run: run[1])
        return [(one, two) for one, two in itertools.pairwise(ordered) if two[1] < one[2]]


def in_one_transaction(journal: Journal, replica: str, interval: float) -> PeriodicTask[None]:
    def work(session: Session) -> None:
        started = journal.started(replica)
        journal.release.wait(timeout=10)
        time.sleep(0.05)
        journal.ended(replica, started)

    return PeriodicTask(TASK, interval, work)


def across_transactions(journal: Journal, replica: str, interval: float) -> PeriodicFlow:
    async def work() -> None:
        started = journal.started(replica)
        await asyncio.to_thread(journal.release.wait, 10)
        await asyncio.sleep(0.05)
        journal.ended(replica, started)

    return PeriodicFlow(TASK, interval, work)


TaskKind = Callable[[Journal, str, float], Periodic]


def with_tasks(*tasks: Background) -> ServiceDefinition:
    """The payment service running `tasks` instead of its own servicer and sweeper."""

    def register(server: grpc.aio.Server, runtime: ServiceRuntime) -> list[Background]:
        return list(tasks)

    return dataclasses.replace(payment, register=register)


@asynccontextmanager
async def replicas(
    database_url: str, kind: TaskKind, journal: Journal, interval: float, names: tuple[str, ...] = ("a", "b")
) -> AsyncIterator[dict[str, RunningService]]:
    async with AsyncExitStack() as stack:
        running = {}
        for name in names:
            definition = with_tasks(kind(journal, name, interval))
            running[name] = await stack.enter_async_context(running_service(definition, database_url))
        try:
            yield running
        finally:
            journal.release.set()  # lets a held run end, so that the servers can stop


@pytest.fixture
def postgres_url(new_database_url: Callable[[str, str], str]) -> str:
    return new_database_url("postgres", "periodic")


@pytest.mark.parametrize("kind", [in_one_transaction, across_transactions])
async def test_while_one_replica_runs_a_task_the_other_skips_its_rounds(
    postgres_url: str, kind: TaskKind
) -> None:
    journal = Journal()
    async with replicas(postgres_url, kind, journal, interval=0.05) as running:
        await eventually(lambda: len(journal.running) == 1, what="one replica running the task")
        [holder] = journal.running
        [other] = set(running) - {holder}
        await eventually(lambda: runs(running[other], "skipped") >= 3, what="the other replica skipping")

        assert journal.running == {holder}
        assert journal.runs == []
        assert runs(running[other], "success") == 0
        assert runs(running[holder], "skipped") == 0

        journal.release.set()
        await eventually(lambda: runs(running[holder], "success") >= 1, what="the run ending")
        assert [run[0] for run in journal.runs][:1] == [holder]


@pytest.mark.parametrize("kind", [in_one_transaction, across_transactions])
async def test_two_replicas_running_a_task_every_interval_never_overlap(
    postgres_url: str, kind: TaskKind
) -> None:
    journal = Journal()
    journal.release.set()  # each run takes 50 ms, the interval is 20 ms: they contend all along
    async with replicas(postgres_url, kind, journal, interval=0.02) as running:
        await eventually(lambda: len(journal.runs) >= 20, what="twenty runs", within=20)
        skipped = {name: runs(replica, "skipped") for name, replica in running.items()}

    assert journal.overlaps() == []
    assert {run[0] for run in journal.runs} == {"a", "b"}, "both take turns"
    assert all(count >= 1 for count in skipped.values()), skipped


async def test_a_failing_task_is_logged_and_counted_and_runs_again(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []
    committed: list[int] = []

    def fail_first(session: Session) -> int:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise RuntimeError("the first run fails")
        return len(attempts)

    task = PeriodicTask(TASK, 0.05, fail_first, committed=committed.append)
    caplog.set_level(logging.ERROR, logger="asan.periodic")
    async with running_service(with_tasks(task), database_url) as service:
        await eventually(lambda: runs(service, "success") >= 2, what="two runs after the failure")

        assert runs(service, "failure") == 1
        assert runs(service, "skipped") == 0  # alone, a replica always holds the lock
        assert metric(service, "asan_periodic_task_duration_seconds_count", task=TASK) >= 3
        last_success = metric(service, "asan_periodic_task_last_success_timestamp_seconds", task=TASK)
        assert time.time() - 10 < last_success <= time.time()
    # What a failed run returned is never reported as committed.
    assert committed[:2] == [2, 3]
    [failure] = [r for r in caplog.records if r.getMessage().startswith("periodic task failed")]
    assert failure.task == TASK  # type: ignore[attr-defined]
    assert failure.exc_info is not None
    assert str(failure.exc_info[1]) == "the first run fails"


async def test_every_outcome_of_a_task_is_exported_at_zero_from_the_start(database_url: str) -> None:
    async def nothing() -> None:
        return None

    not_yet = PeriodicFlow(TASK, 3600, nothing)  # its first run is up to an hour away
    async with running_service(with_tasks(not_yet), database_url) as service:
        exported = {
            sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(service.metrics_text())
            for sample in family.samples
            if sample.name == "asan_periodic_task_runs_total" and sample.labels["task"] == TASK
        }
    assert exported == {"success": 0.0, "failure": 0.0, "skipped": 0.0}


def test_a_task_has_the_same_lock_in_every_process_and_release() -> None:
    """Replicas of two releases run side by side during a rollout: the key must not change."""
    assert lock_key("payment", "expire_unpaid_payments") == lock_key("payment", "expire_unpaid_payments")
    assert lock_key("payment", "retention") == -1113010296621051999
    assert lock_key("visa", "retention") != lock_key("payment", "retention")
    assert lock_key("payment", "retention") != lock_key("payment", "expire_unpaid_payments")
