"""FetchData: a bank reads a citizen's data under a consent, from the providers.

Three steps, none holding a transaction across a call: (1) read the consent and check the
fetch against it; (2) ask the providers, and sign the package; (3) in one transaction, check
again (the citizen may have paused or revoked meanwhile), count the fetch, use up a one-time
consent, append the DATA_FETCHED entry with the package's digest and add DataFetched. A
provider down ends the flow at (2): nothing is written, nothing logged as fetched.

Finance keeps no copy of the data: the idempotency key stores the package without its records
and signed content, so that a replay of a delivered fetch is ALREADY_EXISTS naming the
package, not the data again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from asan.finance.v1 import events_pb2, finance_pb2
from services.finance import access_log, consenting, convert, notices
from services.finance.catalogue import providers_of
from services.finance.consents import ConsentRefused, FetchAsk, after_fetch, check_fetch
from services.finance.documents import data_package
from services.finance.metrics import FinanceMetrics
from services.finance.registers import Registers
from services.finance.requests import FetchWanted
from services.finance.tables import ConsentRow
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.errors import AlreadyExists, ServiceError
from services.runtime.idempotency import Idempotency, IdempotencyKey
from services.runtime.signing import Ed25519Signer


@dataclass(frozen=True)
class _Checked:
    consent_id: str
    fin: str
    institution_code: str
    ask: FetchAsk


def _delivered(stored: bytes) -> AlreadyExists:
    first = finance_pb2.DataPackage.FromString(stored)
    return AlreadyExists(
        message=(
            "This request_id already delivered its package; finance keeps no copy of the data. "
            "Fetch again with a new request_id if the consent allows."
        ),
        reason="PACKAGE_ALREADY_DELIVERED",
        metadata={"package_id": first.package_id, "digest": first.digest},
    )


def _ask(consent: ConsentRow, wanted: FetchWanted) -> FetchAsk:
    start, end = wanted.period or (consent.period_start, consent.period_end)
    return FetchAsk(scopes=wanted.scopes or consent.scope_names, period_start=start, period_end=end)


def _check(consent: ConsentRow, ask: FetchAsk, now: datetime) -> None:
    try:
        check_fetch(convert.state(consent), ask, now)
    except ConsentRefused as refusal:
        raise convert.refused(refusal) from None


class Fetching:
    def __init__(
        self,
        database: Database,
        idempotency: Idempotency,
        registers: Registers,
        signer: Ed25519Signer,
        metrics: FinanceMetrics,
    ) -> None:
        self.database = database
        self.idempotency = idempotency
        self.registers = registers
        self.signer = signer
        self.metrics = metrics

    async def fetch(
        self, key: IdempotencyKey, principal: Principal, wanted: FetchWanted
    ) -> finance_pb2.DataPackage:
        checked = await self.database.run(lambda s: self._checked(s, key, principal, wanted))
        ask = checked.ask
        period = (ask.period_start, ask.period_end)
        try:
            parts = await self.registers.fetch(checked.fin, checked.consent_id, ask.scopes, period)
        except ServiceError:
            self.metrics.fetched(ask.scopes, "unavailable")
            raise
        package_id = str(uuid.uuid4())
        fetched_at = utcnow()
        document = data_package(
            self.signer,
            package_id=package_id,
            consent_id=checked.consent_id,
            institution_code=checked.institution_code,
            fin=checked.fin,
            fetched_at=fetched_at,
            period=period,
            scopes=parts,
        )
        delivered = convert.package(package_id, checked.consent_id, fetched_at, parts, document)
        providers = tuple(providers_of(ask.scopes))
        # What the idempotency key keeps: the package's ids and digest, none of its data.
        kept = finance_pb2.DataPackage(
            package_id=package_id,
            consent_id=checked.consent_id,
            fetch_time=delivered.fetch_time,
            digest=document.digest,
        )

        def record(session: Session) -> None:
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                raise _delivered(claimed)
            consent = consenting.visible_consent(session, principal, checked.consent_id, for_update=True)
            _check(consent, ask, fetched_at)
            consent.status = after_fetch(convert.state(consent).kind).value
            consent.last_fetch_at = fetched_at
            consent.fetch_count += 1
            consent.updated_at = fetched_at
            access_log.append(
                session,
                consent,
                "DATA_FETCHED",
                fetched_at,
                key.request_id,
                scopes=ask.scopes,
                providers=providers,
                package_digest=document.digest,
            )
            consenting.emit(
                session,
                events_pb2.DataFetched(
                    consent_id=consent.id,
                    fin=consent.fin,
                    institution_code=consent.institution_code,
                    package_id=package_id,
                    digest=document.digest,
                    scopes=convert.scope_values(ask.scopes),
                    providers=list(providers),
                    fetch_time=protos.timestamp(fetched_at),
                ),
            )
            notices.data_fetched(
                session, consent, package_id=package_id, scopes=ask.scopes, fetched_at=fetched_at
            )
            self.idempotency.complete(session, key, kept)

        try:
            await self.database.run_retrying_on_conflict(record)
        except ServiceError:
            self.metrics.fetched(ask.scopes, "refused")
            raise
        self.metrics.fetched(ask.scopes, "delivered")
        return delivered

    def _checked(
        self, session: Session, key: IdempotencyKey, principal: Principal, wanted: FetchWanted
    ) -> _Checked:
        replay = self.idempotency.peek(session, key)
        if isinstance(replay, bytes):
            raise _delivered(replay)
        consent = consenting.visible_consent(session, principal, wanted.consent_id)
        ask = _ask(consent, wanted)
        try:
            _check(consent, ask, utcnow())
        except ServiceError:
            self.metrics.fetched(ask.scopes, "refused")
            raise
        return _Checked(consent.id, consent.fin, consent.institution_code, ask)
