"""A foreign payer's passport number has a term: five years after the payment was made, the
runtime's retention purge clears it; the payment stays, with the passport's country, and a
younger payment keeps its number."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from asan.common.v1 import identifiers_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2_grpc
from services.payment.personal_data import foreign_passports_rule
from services.payment.service import definition
from services.payment.tables import PaymentRow, runtime_tables
from services.runtime.config import RetentionConfig
from services.runtime.db import Database, utcnow
from services.runtime.retention import purge_runtime_tables
from tests.payment.builders import Callers, create_request, get, money, payment_service

YEAR = timedelta(days=365)


async def test_a_foreign_payers_passport_number_is_cleared_after_its_term(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASAN_RETENTION_BATCH_ROWS", "1")
    async with payment_service(database_url) as service:
        stub = payment_service_pb2_grpc.PaymentServiceStub(service.channel)
        dmx = Callers.of(service).dmx_service
        made = []
        for number in ("P0000001", "P0000002", "P0000003"):
            passport = identifiers_pb2.ForeignPassport(issuing_country="DEU", number=number)
            payment = payment_pb2.Payment(
                payer=identifiers_pb2.PartyId(foreign_passport=passport),
                service_code="visa.evisa.standard",
                amount=money(2000, "USD"),
                reference=f"EV-2026-{number}",
            )
            made.append(await stub.CreatePayment(create_request(payment), metadata=dmx))
        old = [p.payment_id for p in made[:2]]

        def age(session: Session) -> None:
            session.execute(
                update(PaymentRow).where(PaymentRow.id.in_(old)).values(created_at=utcnow() - 6 * YEAR)
            )

        database: Database = service.server.database
        await database.run(age)
        purged = await purge_runtime_tables(
            database, runtime_tables, RetentionConfig.from_env(), personal_data=definition.personal_data
        )
        rows = await database.run(lambda s: {r.id: r for r in s.scalars(select(PaymentRow))})
        kept = await get(stub, dmx, made[2].payment_id)
        cleared = await get(stub, dmx, old[0])

    assert purged[foreign_passports_rule.name] == 2
    assert [rows[i].payer_passport_number for i in old] == [None, None]
    assert [rows[i].payer_passport_country for i in old] == ["DEU", "DEU"]
    assert rows[made[2].payment_id].payer_passport_number == "P0000003"
    assert kept.payer.foreign_passport.number == "P0000003"
    assert not cleared.payer.foreign_passport.number and cleared.amount.minor_units == 2000
