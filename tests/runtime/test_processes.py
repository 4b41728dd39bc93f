"""ASAN_PROCESSES: one service as several processes on one gRPC port, each with its own
metrics port, stopped together by one SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families

from asan.payment.v1 import payment_service_pb2, payment_service_pb2_grpc
from services.payment.service import SERVICE_NAME
from tests.runtime.serversupport import REPO_ROOT, SERVING, health_status, prepared_process_env


def handled_list_services(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        exposition = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "grpc_server_handled_total" and sample.labels.get("grpc_method") == "ListServices"
    )


async def both_up(env: dict[str, str]) -> bool:
    """Health answers SERVING (from either process: they share the port) and both metrics
    ports answer (each process opens its own before it serves)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{env['PAYMENT_GRPC_PORT']}") as channel:
        try:
            if await health_status(channel, SERVICE_NAME) != SERVING:
                return False
        except grpc.aio.AioRpcError:
            return False
    metrics_port = int(env["PAYMENT_METRICS_PORT"])
    try:
        for index in (0, 1):
            await asyncio.to_thread(handled_list_services, metrics_port + index)
    except OSError:
        return False
    return True


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on the loopback now: process i of a
    service serves its metrics on the configured port + i."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("127.0.0.1", 0))
            base = int(first.getsockname()[1])
            with contextlib.ExitStack() as held:
                try:
                    for offset in range(1, count):
                        held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)).bind(
                            ("127.0.0.1", base + offset)
                        )
                except OSError:
                    continue
                return base
    raise AssertionError(f"no {count} consecutive free ports")


@contextlib.asynccontextmanager
async def serving(env: dict[str, str], logs: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m services.payment serve` once it answers SERVING; killed if still running. Three
    processes start here, not one: the wait is longer than payment_process's, and each attempt
    has a fresh channel (a channel's reconnect back-off would outlast the start)."""
    with (logs / "stdout.jsonl").open("wb") as out, (logs / "stderr.txt").open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.payment", "serve", env=env, cwd=REPO_ROOT, stdout=out, stderr=err
        )
    try:
        for _ in range(600):
            assert process.returncode is None, (logs / "stderr.txt").read_text()
            if await both_up(env):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("serve did not answer SERVING")
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_two_processes_share_the_port_count_their_own_calls_and_stop_together(tmp_path: Path) -> None:
    env = {
        **prepared_process_env(tmp_path),
        "ASAN_PROCESSES": "2",
        "PAYMENT_METRICS_PORT": str(consecutive_free_ports(2)),
    }
    async with serving(env, tmp_path) as process:
        # Connections of their own, which the kernel spreads over the two listeners.
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{env['PAYMENT_GRPC_PORT']}") for _ in range(8)]
        for channel in channels:
            stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
            for _ in range(5):
                await stub.ListServices(payment_service_pb2.ListServicesRequest(), timeout=10)
        await asyncio.gather(*(channel.close() for channel in channels))
        metrics_port = int(env["PAYMENT_METRICS_PORT"])
        counts = [await asyncio.to_thread(handled_list_services, metrics_port + index) for index in (0, 1)]

        assert sum(counts) == 40
        process.terminate()
        assert await process.wait() == 0
    stopped = [line for line in (tmp_path / "stdout.jsonl").read_text().splitlines() if '"stopped"' in line]
    assert len(stopped) == 2
