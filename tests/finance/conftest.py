"""Finance tests run a real finance server on SQLite and PostgreSQL, on port 0 like every
test server. Its sandbox registers are served by the server itself: finance calls them over
gRPC with its own token, at the port it is bound to (read when it calls, not configured)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from services.finance.service import definition
from tests.support.servers import RunningService, running_service


@pytest.fixture
async def finance(
    database_backend: str, new_database_url: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningService]:
    monkeypatch.setenv("FINANCE_EXPIRY_SWEEP_SECONDS", "0.2")
    monkeypatch.setenv("ASAN_CLIENT_DEADLINE_SECONDS", "2")
    url = new_database_url(database_backend, "finance")
    async with running_service(definition, url) as service:
        yield service
