"""Appeals tests run a real payment server beside the appeals server (an appeal about a payment
is checked with it), each on its own database: SQLite, and PostgreSQL where configured."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.appeals.builders import Stub, appeals_service, appeals_stub
from tests.payment.builders import payment_service
from tests.support.servers import RunningService


@pytest.fixture
async def payment(
    database_backend: str, new_database_url: Callable[[str, str], str]
) -> AsyncIterator[RunningService]:
    async with payment_service(new_database_url(database_backend, "payment")) as service:
        yield service


@pytest.fixture
async def appeals(
    database_backend: str,
    new_database_url: Callable[[str, str], str],
    payment: RunningService,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningService]:
    async with appeals_service(
        new_database_url(database_backend, "appeals"), payment.address, monkeypatch
    ) as service:
        yield service


@pytest.fixture
def stub(appeals: RunningService) -> Stub:
    return appeals_stub(appeals)
