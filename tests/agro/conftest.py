"""Agro tests run a real agro server on its own database (SQLite, and PostgreSQL where
configured), on a day in the autumn window of 2026."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.agro.builders import agro_service
from tests.support.servers import RunningService


@pytest.fixture
async def agro(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningService]:
    async with agro_service(database_url, monkeypatch) as service:
        yield service
