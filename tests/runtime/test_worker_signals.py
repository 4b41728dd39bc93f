"""A worker told to stop while it is still starting stops once it has started, promptly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from services.payment.service import definition as payment
from services.runtime.migrations import upgrade
from tests.support.workers import WorkerProcess, wait_until


def test_sigterm_during_start_up_stops_the_worker_cleanly(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'payment.sqlite3'}"
    upgrade(database_url, payment.migrations)
    env = {"PAYMENT_DATABASE_URL": database_url, "AMQP_URI": "memory://", "ASAN_WORKER_METRICS_PORT": "0"}
    worker = WorkerProcess([], env, tmp_path / "worker.log", argv=["services.payment", "worker"])
    try:
        # Signals are handled from here on, while the nameko containers start: stop right then.
        wait_until(lambda: "starting event workers" in worker.output(), timeout=30, what="worker starting")
        worker.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = worker.process.wait(timeout=15)
        assert code == 0, worker.output()
        assert time.monotonic() - started < 10
        assert "event workers stopped" in worker.output()
        assert "Traceback" not in worker.output()
    finally:
        worker.close()
