"""Every metric a dashboard panel, a recording rule or an alert reads is one the running suite
exports: every service's real server and real event worker (every service in services/suite.py,
visa calling payment) and the real gateway in front of them are started, each /metrics page
is scraped, and the names are compared."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from services import suite
from services.runtime.config import backend_variable
from tests.deploy.support import (
    ROOT,
    dashboard_queries,
    dashboards,
    exported_names,
    metric_names,
    recorded_names,
    rules,
    service_names,
)
from tests.support.ports import free_port
from tests.support.servers import RunningService, running_service
from tests.support.workers import WorkerProcess

# Metrics that come from outside the suite, with who exports them.
EXTERNAL = {
    "up": "Prometheus itself, for every scrape target",
    "kube_pod_container_status_restarts_total": "kube-state-metrics",
}
# The gateway's families (gateway/metrics.py), checked against the running gateway.
GATEWAY_FAMILIES = ("http_", "grpc_client_")


def used_metrics() -> dict[str, set[str]]:
    """Metric name -> where it is read (rule or dashboard panel)."""
    used: dict[str, set[str]] = {}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"rule {rule.get('record') or rule.get('alert')}")
    for file, board in dashboards().items():
        for query in dashboard_queries(board):
            for name in metric_names(query):
                used.setdefault(name, set()).add(f"dashboard {file}")
    return {name: where for name, where in used.items() if name not in recorded_names()}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
    return text


async def scrape_when_up(
    url: str,
    exited: Callable[[], int | None] = lambda: None,
    output: Callable[[], str] = str,
    within: float = 30,
) -> str:
    """Scrapes `url` once it answers, unless the process behind it has exited; the event loop
    keeps running meanwhile (the payment server shares it)."""
    deadline = time.monotonic() + within
    while True:
        if (code := exited()) is not None:
            raise AssertionError(f"exited with {code}:\n{output()}")
        try:
            return await asyncio.to_thread(scrape, url)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {within} s:\n{output()}") from None
            await asyncio.sleep(0.2)


@contextmanager
def service_worker(service: str, database_url: str, log: Path) -> Iterator[tuple[str, WorkerProcess]]:
    """`python -m services.<service> worker` with its metrics endpoint: its metrics URL and process."""
    port = free_port()
    env = {
        f"{service.upper()}_DATABASE_URL": database_url,
        "AMQP_URI": "memory://",
        "ASAN_WORKER_METRICS_PORT": str(port),
    }
    worker = WorkerProcess([], env, log, argv=[f"services.{service}", "worker"])
    try:
        yield f"http://127.0.0.1:{port}/metrics", worker
    finally:
        worker.terminate()


@asynccontextmanager
async def gateway_process(servers: Mapping[str, RunningService], log: Path) -> AsyncIterator[str]:
    """`python -m gateway` in front of the servers (by service name); yields its metrics URL."""
    port, metrics_port = free_port(), free_port()
    backends = {
        backend_variable(package): servers[definition.name].address
        for definition in suite.definitions()
        for package in suite.proto_packages(definition)
    }
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_METRICS_PORT": str(metrics_port),
        **backends,
    }
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await scrape_when_up(f"http://127.0.0.1:{port}/healthz", lambda: process.returncode, log.read_text)
        yield f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def gateway_is_importable() -> str | None:
    """None, or why the gateway cannot run here."""
    try:
        importlib.import_module("gateway.server")
    except ImportError as error:
        return f"the gateway cannot be imported ({error})"
    return None


def missing(used: dict[str, set[str]], exported: set[str]) -> list[str]:
    return sorted(
        f"{name} (read by {', '.join(sorted(where))})"
        for name, where in used.items()
        if name not in exported and name not in EXTERNAL
    )


def test_every_service_is_started_here() -> None:
    assert {definition.name for definition in suite.definitions()} == set(service_names()), (
        "the test below starts the services of services/suite.py: every service folder must be one"
    )


async def test_every_metric_read_by_rules_and_dashboards_is_exported(
    new_database_url: Callable[[str, str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    definitions = suite.definitions()
    databases = {d.name: new_database_url("sqlite", d.name) for d in definitions}
    exported: set[str] = set()
    async with AsyncExitStack() as started:
        servers: dict[str, RunningService] = {}
        # In the order of their ports, so that a callee is up before its callers: a service
        # reaches another at <CALLER>_<CALLEE>_TARGET (visa calls payment for the fee, at
        # VISA_PAYMENT_TARGET, on the first application: none is made here).
        for definition in definitions:
            server = await started.enter_async_context(
                running_service(definition, databases[definition.name])
            )
            servers[definition.name] = server
            for caller in definitions:
                monkeypatch.setenv(f"{caller.name.upper()}_{definition.name.upper()}_TARGET", server.address)
        for name, server in servers.items():
            exported |= exported_names(await asyncio.to_thread(server.metrics_text))
            if suite.has_worker(name):
                with service_worker(name, databases[name], tmp_path / f"{name}-worker.log") as (url, worker):
                    exported |= exported_names(await scrape_when_up(url, worker.process.poll, worker.output))
        why_not = gateway_is_importable()
        if why_not is None:
            async with gateway_process(servers, tmp_path / "gateway.log") as gateway_url:
                exported |= exported_names(await scrape_when_up(gateway_url))
    used = used_metrics()
    if why_not is not None:
        used = {name: where for name, where in used.items() if not name.startswith(GATEWAY_FAMILIES)}
    assert not missing(used, exported), "read but exported by no running process:\n" + "\n".join(
        missing(used, exported)
    )
    if why_not is not None:
        pytest.skip(f"services and worker checked; the gateway's metrics not: {why_not}")


def test_the_external_metrics_are_the_only_ones_nobody_in_the_suite_exports() -> None:
    assert set(EXTERNAL) <= set(used_metrics()), "an external metric no longer read: drop it from EXTERNAL"
