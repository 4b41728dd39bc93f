"""Finance tests run a real finance server on SQLite and PostgreSQL. Its sandbox registers are
served by the server itself, so it listens on a port chosen before it starts: the registers'
target is its own address, and finance calls them over gRPC with its own token."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from services.finance.service import definition
from tests.support.servers import RunningService, running_service, test_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def finance(
    database_backend: str, new_database_url: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningService]:
    monkeypatch.setenv("FINANCE_EXPIRY_SWEEP_SECONDS", "0.2")
    monkeypatch.setenv("ASAN_CLIENT_DEADLINE_SECONDS", "2")
    url = new_database_url(database_backend, "finance")
    config = dataclasses.replace(test_config(definition, url), grpc_port=free_port())
    async with running_service(definition, url, config) as service:
        yield service
