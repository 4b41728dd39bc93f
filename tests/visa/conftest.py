"""Visa tests run a real payment server beside the visa server, each on its own database
(SQLite, and PostgreSQL where configured)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.payment.builders import payment_service
from tests.support.servers import RunningService
from tests.visa.builders import visa_service


@pytest.fixture
async def payment(
    database_backend: str, new_database_url: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningService]:
    # Unpaid fees expire within a test, not 30 s later.
    monkeypatch.setenv("PAYMENT_EXPIRY_SWEEP_SECONDS", "0.2")
    async with payment_service(new_database_url(database_backend, "payment")) as service:
        yield service


@pytest.fixture
async def visa(
    database_backend: str,
    new_database_url: Callable[[str, str], str],
    payment: RunningService,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningService]:
    async with visa_service(
        new_database_url(database_backend, "visa"), payment.address, monkeypatch
    ) as service:
        yield service
