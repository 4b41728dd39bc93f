"""The FinanceService gRPC servicer. Each method reads: validate the request (requests),
authorise the caller (access), call the rule or the flow (consenting, fetching, access_log),
and answer with the API message (convert)."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.common.v1 import audit_pb2
from asan.finance.v1 import finance_pb2, finance_service_pb2, finance_service_pb2_grpc
from services.finance import access, access_log, consenting, convert, requests
from services.finance.consents import Action, ConsentRefused, Status, terms_problems
from services.finance.fetching import Fetching
from services.finance.metrics import FinanceMetrics
from services.finance.registers import Registers
from services.finance.tables import ConsentRow, runtime_tables
from services.runtime.audit import list_audit_records
from services.runtime.baku_time import baku_date
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import Idempotency, idempotency_key
from services.runtime.interceptors import require_principal
from services.runtime.paging import (
    decode_keyset,
    decode_page_token,
    encode_keyset,
    encode_page_token,
    filter_fingerprint,
    page_size,
)
from services.runtime.signing import ALGORITHM, Ed25519Signer
from services.runtime.validation import Violations, check_request_id

Context = grpc.aio.ServicerContext[Any, Any]


class FinanceServicer(finance_service_pb2_grpc.FinanceServiceServicer):
    def __init__(
        self, database: Database, registers: Registers, signer: Ed25519Signer, metrics: FinanceMetrics
    ) -> None:
        self.database = database
        self.registers = registers
        self.signer = signer
        self.metrics = metrics
        self.idempotency = Idempotency(runtime_tables.idempotency_keys)
        self.fetching = Fetching(database, self.idempotency, registers, signer, metrics)

    # --- Banks ask --------------------------------------------------------------------------

    async def CreateConsent(
        self, request: finance_service_pb2.CreateConsentRequest, context: Context
    ) -> finance_pb2.Consent:
        principal = require_principal()
        violations = Violations()
        terms = requests.new_consent(request, violations)
        now = utcnow()
        if terms is not None:
            for field, problem in terms_problems(terms, now, baku_date(now)):
                violations.add(field, problem)
            for index, scope in enumerate(terms.scopes):
                if not self.registers.serves(scope):
                    violations.add(
                        f"consent.scopes[{index}]", f"No register serves {scope} yet.", "UNAVAILABLE_SCOPE"
                    )
        violations.require(request)
        violations.raise_if_any()
        assert terms is not None
        institution = access.registered_bank(principal)
        access.ensure_purpose_allowed(institution, terms.purpose)
        key = idempotency_key(request, principal)
        created: list[bool] = []

        def create(session: Session) -> finance_pb2.Consent:
            created.append(True)
            return convert.consent(consenting.create(session, institution, terms, request.request_id, now))

        consent = await self.idempotency.run(self.database, key, finance_pb2.Consent, create)
        if created:
            self.metrics.consent_changes.labels(Status.PENDING.value).inc()
        return consent

    async def GetConsent(
        self, request: finance_service_pb2.GetConsentRequest, context: Context
    ) -> finance_pb2.Consent:
        principal = require_principal()
        violations = Violations()
        requests.check_consent_id(violations, request.consent_id)
        violations.require(request)
        violations.raise_if_any()
        return await self.database.run(
            lambda s: convert.consent(consenting.visible_consent(s, principal, request.consent_id))
        )

    async def ListConsents(
        self, request: finance_service_pb2.ListConsentsRequest, context: Context
    ) -> finance_service_pb2.ListConsentsResponse:
        principal = require_principal()
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        status = requests.status_filter(request.status, violations)
        fingerprint = filter_fingerprint("consents", principal.kind.value, principal.subject, status)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.require(request)
        violations.raise_if_any()
        if principal.is_bank:
            owner = ConsentRow.institution_code == principal.institution_code
        else:
            owner = ConsentRow.fin == access.ensure_citizen(principal)

        def read(session: Session) -> list[ConsentRow]:
            query = select(ConsentRow).where(owner)
            if status is not None:
                query = query.where(ConsentRow.status == status)
            if after is not None:
                query = query.where(
                    (ConsentRow.created_at < after[0])
                    | ((ConsentRow.created_at == after[0]) & (ConsentRow.id < after[1]))
                )
            return list(
                session.scalars(
                    query.order_by(ConsentRow.created_at.desc(), ConsentRow.id.desc()).limit(size + 1)
                )
            )

        rows = await self.database.run(read)
        response = finance_service_pb2.ListConsentsResponse(
            consents=[convert.consent(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = encode_keyset(
                rows[size - 1].created_at, rows[size - 1].id, fingerprint
            )
        return response

    # --- Citizens answer --------------------------------------------------------------------

    async def ApproveConsent(
        self, request: finance_service_pb2.ApproveConsentRequest, context: Context
    ) -> finance_pb2.Consent:
        return await self._change(request, Action.APPROVE)

    async def RejectConsent(
        self, request: finance_service_pb2.RejectConsentRequest, context: Context
    ) -> finance_pb2.Consent:
        return await self._change(request, Action.REJECT)

    async def PauseConsent(
        self, request: finance_service_pb2.PauseConsentRequest, context: Context
    ) -> finance_pb2.Consent:
        return await self._change(request, Action.PAUSE)

    async def ResumeConsent(
        self, request: finance_service_pb2.ResumeConsentRequest, context: Context
    ) -> finance_pb2.Consent:
        return await self._change(request, Action.RESUME)

    async def RevokeConsent(
        self, request: finance_service_pb2.RevokeConsentRequest, context: Context
    ) -> finance_pb2.Consent:
        return await self._change(request, Action.REVOKE)

    async def _change(self, request: Any, action: Action) -> finance_pb2.Consent:
        """One citizen's change, in one transaction with its log entry and event; counted once,
        not per replay."""
        principal = require_principal()
        violations = Violations()
        requests.consent_change(request.request_id, request.consent_id, violations)
        violations.require(request)
        violations.raise_if_any()
        access.ensure_citizen(principal)
        key = idempotency_key(request, principal)
        changed: list[ConsentRow] = []

        def change(session: Session) -> finance_pb2.Consent:
            consent = consenting.visible_consent(session, principal, request.consent_id, for_update=True)
            try:
                consenting.change(
                    session,
                    consent,
                    action=action,
                    now=utcnow(),
                    request_id=request.request_id,
                    signer=self.signer,
                )
            except ConsentRefused as refusal:
                raise convert.refused(refusal) from None
            changed.append(consent)
            return convert.consent(consent)

        consent = await self.idempotency.run(self.database, key, finance_pb2.Consent, change)
        for row in changed:
            self.metrics.consent_changes.labels(row.status).inc()
            if action is Action.APPROVE and row.approved_at:
                self.metrics.approval_seconds.observe((row.approved_at - row.created_at).total_seconds())
        return consent

    # --- Banks fetch ------------------------------------------------------------------------

    async def FetchData(
        self, request: finance_service_pb2.FetchDataRequest, context: Context
    ) -> finance_pb2.DataPackage:
        principal = require_principal()
        violations = Violations()
        wanted = requests.fetch_wanted(request, violations)
        violations.require(request)
        violations.raise_if_any()
        access.ensure_bank(principal)
        return await self.fetching.fetch(idempotency_key(request, principal), principal, wanted)

    # --- The access log ---------------------------------------------------------------------

    async def ListAccessLogEntries(
        self, request: finance_service_pb2.ListAccessLogEntriesRequest, context: Context
    ) -> finance_service_pb2.ListAccessLogEntriesResponse:
        # The page token is bound to the citizen's own chain: who asks comes first here.
        fin = access.ensure_citizen(require_principal())
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        fingerprint = filter_fingerprint("access_log", fin)
        cursor = decode_page_token(violations, request.page_token, fingerprint)
        before = _sequence(cursor.last_id, violations) if cursor else None
        violations.require(request)
        violations.raise_if_any()
        rows = await self.database.run(lambda s: access_log.entries_newest_first(s, fin, before, size + 1))
        response = finance_service_pb2.ListAccessLogEntriesResponse(
            entries=[convert.entry(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = encode_page_token("", str(rows[size - 1].sequence), fingerprint)
        return response

    async def VerifyAccessLog(
        self, request: finance_service_pb2.VerifyAccessLogRequest, context: Context
    ) -> finance_pb2.AccessLogVerification:
        principal = require_principal()
        violations = Violations()
        check_request_id(violations, request.request_id)
        violations.require(request)
        violations.raise_if_any()
        fin = access.chain_to_verify(principal, request.fin)
        check = await self.database.run(lambda s: access_log.verify(s, fin))
        return finance_pb2.AccessLogVerification(
            fin=fin,
            intact=check.first_broken is None,
            entries_checked=check.entries_checked,
            first_broken_sequence=check.first_broken or 0,
            head_hash=check.head_hash,
        )

    async def ListChainHeads(
        self, request: finance_service_pb2.ListChainHeadsRequest, context: Context
    ) -> finance_service_pb2.ListChainHeadsResponse:
        principal = require_principal()
        violations = Violations()
        size = page_size(violations, request.page_size, default=100)
        fingerprint = filter_fingerprint("chain_heads")
        cursor = decode_page_token(violations, request.page_token, fingerprint)
        violations.require(request)
        violations.raise_if_any()
        access.ensure_admin(principal)
        after = cursor.last_id if cursor else None
        rows = await self.database.run(lambda s: access_log.heads(s, after, size + 1))
        response = finance_service_pb2.ListChainHeadsResponse(
            heads=[convert.head(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = encode_page_token("", rows[size - 1].fin, fingerprint)
        return response

    async def GetSigningKey(
        self, request: finance_service_pb2.GetSigningKeyRequest, context: Context
    ) -> finance_pb2.SigningKey:
        return finance_pb2.SigningKey(
            public_key_pem=self.signer.public_key_pem(), key_id=self.signer.key_id, algorithm=ALGORITHM
        )

    # --- Audit trail (services.runtime.audit) -------------------------------------------------

    async def ListAuditRecords(
        self, request: audit_pb2.ListAuditRecordsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.ListAuditRecordsResponse:
        return await list_audit_records(self.database, runtime_tables, request)


def _sequence(text: str, violations: Violations) -> int | None:
    if not text.isdigit():
        violations.add("page_token", "Not a page token of this method; pass back next_page_token unchanged.")
        return None
    return int(text)
