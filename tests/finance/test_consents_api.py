"""The finance API over real gRPC, on SQLite and PostgreSQL: a bank asks, the citizen answers,
the bank fetches from the sandbox registers (called over gRPC with finance's own token), the
package and the artefact verify offline, and the citizen's access log records every step."""

from __future__ import annotations

import asyncio
import json

import grpc
from sqlalchemy import create_engine, select, text

from asan.finance.v1 import data_provider_pb2, data_provider_pb2_grpc, finance_pb2, finance_service_pb2
from services.finance.tables import AccessLogRow
from services.runtime.signing import verify_signature
from tests.finance.builders import (
    BANK,
    CITIZEN,
    OTHER_BANK,
    admin,
    bank,
    citizen,
    consent_request,
    new_request_id,
    rejected,
    stub,
)
from tests.support.servers import RunningService


async def approved(
    finance: RunningService, request: finance_service_pb2.CreateConsentRequest
) -> finance_pb2.Consent:
    api = stub(finance)
    consent = await api.CreateConsent(request, metadata=bank(finance))
    return await api.ApproveConsent(
        finance_service_pb2.ApproveConsentRequest(request_id=new_request_id(), consent_id=consent.consent_id),
        metadata=citizen(finance, request.consent.fin),
    )


async def fetch(finance: RunningService, consent_id: str, **fields: object) -> finance_pb2.DataPackage:
    return await stub(finance).FetchData(
        finance_service_pb2.FetchDataRequest(request_id=new_request_id(), consent_id=consent_id, **fields),  # type: ignore[arg-type]
        metadata=bank(finance),
    )


async def test_a_bank_asks_the_citizen_approves_the_bank_fetches_and_everything_verifies(
    finance: RunningService,
) -> None:
    api = stub(finance)
    asked = await api.CreateConsent(consent_request(), metadata=bank(finance))
    assert asked.status == finance_pb2.CONSENT_STATUS_PENDING
    assert asked.institution_name == "Kapital Bank"
    summary = {text.locale: text.text for text in asked.summary}
    assert set(summary) == {"az", "en", "ru"}
    assert "Kapital Bank asks for your income, your employment contracts" in summary["en"]

    pending = await api.ListConsents(
        finance_service_pb2.ListConsentsRequest(status=finance_pb2.CONSENT_STATUS_PENDING),
        metadata=citizen(finance),
    )
    assert [c.consent_id for c in pending.consents] == [asked.consent_id]

    consent = await api.ApproveConsent(
        finance_service_pb2.ApproveConsentRequest(request_id=new_request_id(), consent_id=asked.consent_id),
        metadata=citizen(finance),
    )
    assert consent.status == finance_pb2.CONSENT_STATUS_ACTIVE
    key = await api.GetSigningKey(finance_service_pb2.GetSigningKeyRequest())
    verify_signature(key.public_key_pem, consent.artefact.content, consent.artefact.signature)
    terms = json.loads(consent.artefact.content)
    assert (terms["consent_id"], terms["fin"], terms["institution_code"]) == (asked.consent_id, CITIZEN, BANK)
    assert consent.artefact.key_id == key.key_id == terms["key_id"]

    package = await fetch(finance, asked.consent_id)
    verify_signature(key.public_key_pem, package.signed.content, package.signed.signature)
    content = json.loads(package.signed.content)
    assert content["consent_id"] == asked.consent_id
    assert content["providers"] == ["employment", "tax"]
    income = next(part for part in package.scopes if part.scope == finance_pb2.SCOPE_INCOME)
    assert income.provider == "tax"
    assert len(income.records) == 6  # January to June
    # Data minimisation: the register's own case number never leaves it.
    assert set(income.records[0].fields) == {
        "month",
        "employer_voen",
        "gross_income_qepik",
        "tax_withheld_qepik",
    }

    log = await api.ListAccessLogEntries(
        finance_service_pb2.ListAccessLogEntriesRequest(), metadata=citizen(finance)
    )
    assert [entry.action for entry in log.entries] == [
        finance_pb2.ACCESS_ACTION_DATA_FETCHED,
        finance_pb2.ACCESS_ACTION_CONSENT_APPROVED,
        finance_pb2.ACCESS_ACTION_CONSENT_REQUESTED,
    ]
    assert log.entries[0].package_digest == package.digest
    assert list(log.entries[0].providers) == ["employment", "tax"]
    assert {d.locale for d in log.entries[0].description} == {"az", "en", "ru"}

    verification = await api.VerifyAccessLog(
        finance_service_pb2.VerifyAccessLogRequest(request_id=new_request_id()), metadata=citizen(finance)
    )
    assert (verification.intact, verification.entries_checked) == (True, 3)
    heads = await api.ListChainHeads(finance_service_pb2.ListChainHeadsRequest(), metadata=admin(finance))
    assert [(h.fin, h.sequence, h.entry_hash) for h in heads.heads] == [(CITIZEN, 3, verification.head_hash)]

    metrics = finance.metrics_text()
    assert 'asan_finance_consents{status="USED"} 1.0' in metrics
    assert 'asan_finance_fetches_total{outcome="delivered",scope="INCOME"} 1.0' in metrics
    assert "asan_finance_consent_approval_seconds_count 1.0" in metrics
    assert 'asan_finance_provider_request_seconds_count{outcome="ok",provider="tax"} 1.0' in metrics

    # One-time: used by its fetch.
    second = await rejected(fetch(finance, asked.consent_id))
    assert (second.code, second.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_USED")


async def test_one_altered_byte_of_a_stored_entry_is_found(finance: RunningService) -> None:
    consent = await approved(finance, consent_request())
    await fetch(finance, consent.consent_id)
    engine = create_engine(finance.database_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE access_log SET institution_code = 'KAPITALBANC' WHERE fin = :fin AND sequence = 2"),
            {"fin": CITIZEN},
        )
    engine.dispose()
    verification = await stub(finance).VerifyAccessLog(
        finance_service_pb2.VerifyAccessLogRequest(request_id=new_request_id()), metadata=citizen(finance)
    )
    assert not verification.intact
    assert verification.first_broken_sequence == 2


async def test_fetches_outside_the_consent_give_reasons_a_bank_can_act_on(finance: RunningService) -> None:
    api = stub(finance)
    asked = await api.CreateConsent(consent_request(), metadata=bank(finance))
    pending = await rejected(fetch(finance, asked.consent_id))
    assert (pending.code, pending.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_PENDING")

    consent = await approved(finance, consent_request())
    scope = await rejected(fetch(finance, consent.consent_id, scopes=[finance_pb2.SCOPE_PROPERTY]))
    assert (scope.code, scope.reason, scope.metadata) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SCOPE_NOT_CONSENTED",
        {"scopes": "PROPERTY"},
    )
    period = finance_pb2.DatePeriod(
        start_date=consent.data_period.start_date, end_date=consent.data_period.end_date
    )
    period.end_date.month = 7
    outside = await rejected(fetch(finance, consent.consent_id, data_period=period))
    assert (outside.code, outside.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RANGE_NOT_CONSENTED")

    change = {"request_id": new_request_id(), "consent_id": consent.consent_id}
    await api.PauseConsent(finance_service_pb2.PauseConsentRequest(**change), metadata=citizen(finance))
    paused = await rejected(fetch(finance, consent.consent_id))
    assert paused.reason == "CONSENT_PAUSED"
    await api.ResumeConsent(
        finance_service_pb2.ResumeConsentRequest(request_id=new_request_id(), consent_id=consent.consent_id),
        metadata=citizen(finance),
    )
    await api.RevokeConsent(
        finance_service_pb2.RevokeConsentRequest(request_id=new_request_id(), consent_id=consent.consent_id),
        metadata=citizen(finance),
    )
    revoked = await rejected(fetch(finance, consent.consent_id))
    assert (revoked.code, revoked.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_REVOKED")


async def test_approving_twice_is_refused_and_a_replay_returns_the_first_answer(
    finance: RunningService,
) -> None:
    api = stub(finance)
    asked = await api.CreateConsent(consent_request(), metadata=bank(finance))
    approve = finance_service_pb2.ApproveConsentRequest(
        request_id=new_request_id(), consent_id=asked.consent_id
    )
    first = await api.ApproveConsent(approve, metadata=citizen(finance))
    assert await api.ApproveConsent(approve, metadata=citizen(finance)) == first
    again = await rejected(
        api.ApproveConsent(
            finance_service_pb2.ApproveConsentRequest(
                request_id=new_request_id(), consent_id=asked.consent_id
            ),
            metadata=citizen(finance),
        )
    )
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_ACTIVE")


async def test_a_periodic_consent_refuses_a_second_fetch_within_its_frequency(
    finance: RunningService,
) -> None:
    consent = await approved(
        finance,
        consent_request(
            kind=finance_pb2.CONSENT_KIND_PERIODIC,
            frequency=finance_pb2.FETCH_FREQUENCY_DAILY,
            expire_days=300,
        ),
    )
    await fetch(finance, consent.consent_id)
    again = await rejected(fetch(finance, consent.consent_id))
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FREQUENCY_EXCEEDED")
    assert "next_fetch_time" in again.metadata


async def test_banks_see_only_their_own_consents_and_citizens_only_theirs(finance: RunningService) -> None:
    api = stub(finance)
    asked = await api.CreateConsent(consent_request(), metadata=bank(finance))
    get = finance_service_pb2.GetConsentRequest(consent_id=asked.consent_id)
    assert (await api.GetConsent(get, metadata=citizen(finance))).consent_id == asked.consent_id
    for stranger in (bank(finance, OTHER_BANK), citizen(finance, "1AB2C3D")):
        hidden = await rejected(api.GetConsent(get, metadata=stranger))
        assert (hidden.code, hidden.reason) == (grpc.StatusCode.NOT_FOUND, "CONSENT_NOT_FOUND")
    others = await api.ListConsents(
        finance_service_pb2.ListConsentsRequest(), metadata=bank(finance, OTHER_BANK)
    )
    assert not others.consents
    stolen = await rejected(
        api.FetchData(
            finance_service_pb2.FetchDataRequest(request_id=new_request_id(), consent_id=asked.consent_id),
            metadata=bank(finance, OTHER_BANK),
        )
    )
    assert stolen.code == grpc.StatusCode.NOT_FOUND
    for call in (
        api.ListAccessLogEntries(finance_service_pb2.ListAccessLogEntriesRequest(), metadata=bank(finance)),
        api.VerifyAccessLog(
            finance_service_pb2.VerifyAccessLogRequest(request_id=new_request_id(), fin=CITIZEN),
            metadata=bank(finance),
        ),
    ):
        refused = await rejected(call)
        assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CITIZENS_ONLY")


async def test_consent_terms_break_the_rules_field_by_field(finance: RunningService) -> None:
    api = stub(finance)
    too_long = await rejected(api.CreateConsent(consent_request(expire_days=11), metadata=bank(finance)))
    assert too_long.code == grpc.StatusCode.INVALID_ARGUMENT
    assert too_long.violations == {"consent.expire_time": "A one-time consent lasts at most 10 days."}
    periodic = await rejected(
        api.CreateConsent(consent_request(kind=finance_pb2.CONSENT_KIND_PERIODIC), metadata=bank(finance))
    )
    assert set(periodic.violations) == {"consent.frequency"}
    unknown = await rejected(api.CreateConsent(consent_request(), metadata=bank(finance, "NOBANK")))
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.PERMISSION_DENIED, "INSTITUTION_NOT_REGISTERED")
    purpose = await rejected(
        api.CreateConsent(
            consent_request(purpose=finance_pb2.PURPOSE_MORTGAGE), metadata=bank(finance, "AQRARKREDIT")
        )
    )
    assert (purpose.code, purpose.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PURPOSE_NOT_ALLOWED")
    citizens_cannot_ask = await rejected(api.CreateConsent(consent_request(), metadata=citizen(finance)))
    assert citizens_cannot_ask.reason == "BANKS_ONLY"


async def test_a_field_left_out_is_required_and_a_malformed_one_is_named_malformed(
    finance: RunningService,
) -> None:
    api = stub(finance)
    request = consent_request()
    request.consent.fin = ""
    request.consent.data_period.ClearField("end_date")
    request.consent.data_period.start_date.month = 13
    left_out = await rejected(api.CreateConsent(request, metadata=bank(finance)))
    assert left_out.reasons == {
        "consent.fin": "REQUIRED",
        "consent.data_period.start_date": "FORMAT",
        "consent.data_period.end_date": "REQUIRED",
    }
    malformed = await rejected(api.CreateConsent(consent_request(fin="1234"), metadata=bank(finance)))
    assert malformed.reasons == {"consent.fin": "FORMAT"}
    no_consent = await rejected(
        api.CreateConsent(
            finance_service_pb2.CreateConsentRequest(request_id=new_request_id()), metadata=bank(finance)
        )
    )
    assert no_consent.reasons == {"consent": "REQUIRED"}


async def test_a_request_is_validated_before_its_caller_is_authorised(finance: RunningService) -> None:
    """The house order: a citizen's incomplete fetch learns what is missing, as anyone would."""
    api = stub(finance)
    fetch_nothing = await rejected(
        api.FetchData(finance_service_pb2.FetchDataRequest(), metadata=citizen(finance))
    )
    assert fetch_nothing.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fetch_nothing.reasons == {"request_id": "REQUIRED", "consent_id": "REQUIRED"}
    verify_nothing = await rejected(
        api.VerifyAccessLog(finance_service_pb2.VerifyAccessLogRequest(), metadata=bank(finance))
    )
    assert verify_nothing.reasons == {"request_id": "REQUIRED"}
    registers = data_provider_pb2_grpc.DataProviderServiceStub(finance.channel)
    no_days = await rejected(
        registers.GetSubjectRecords(
            data_provider_pb2.GetSubjectRecordsRequest(
                provider="tax",
                fin=CITIZEN,
                scopes=[finance_pb2.SCOPE_INCOME],
                period=finance_pb2.DatePeriod(),
                consent_id="x",
            ),
            metadata=bank(finance),
        )
    )
    assert no_days.reasons == {"period.start_date": "REQUIRED", "period.end_date": "REQUIRED"}


async def test_a_provider_down_is_unavailable_and_nothing_is_logged_as_fetched(
    finance: RunningService,
) -> None:
    consent = await approved(finance, consent_request("SBX0003"))
    down = await rejected(fetch(finance, consent.consent_id))
    assert (down.code, down.reason, down.metadata) == (
        grpc.StatusCode.UNAVAILABLE,
        "PROVIDER_UNAVAILABLE",
        {"providers": "tax"},
    )
    engine = create_engine(finance.database_url)
    with engine.connect() as connection:
        actions = connection.scalars(select(AccessLogRow.action).where(AccessLogRow.fin == "SBX0003")).all()
    engine.dispose()
    assert "DATA_FETCHED" not in actions
    refreshed = await stub(finance).GetConsent(
        finance_service_pb2.GetConsentRequest(consent_id=consent.consent_id), metadata=bank(finance)
    )
    assert (refreshed.status, refreshed.fetch_count) == (finance_pb2.CONSENT_STATUS_ACTIVE, 0)


async def test_consents_expire_on_time_by_the_sweeper(finance: RunningService) -> None:
    asked = await stub(finance).CreateConsent(
        consent_request(expire_days=1.5 / 86400), metadata=bank(finance)
    )
    await asyncio.sleep(2.0)
    refreshed = await stub(finance).GetConsent(
        finance_service_pb2.GetConsentRequest(consent_id=asked.consent_id), metadata=citizen(finance)
    )
    assert refreshed.status == finance_pb2.CONSENT_STATUS_EXPIRED
    log = await stub(finance).ListAccessLogEntries(
        finance_service_pb2.ListAccessLogEntriesRequest(), metadata=citizen(finance)
    )
    assert log.entries[0].action == finance_pb2.ACCESS_ACTION_CONSENT_EXPIRED


async def test_the_registers_answer_finance_and_no_one_else(finance: RunningService) -> None:
    registers = data_provider_pb2_grpc.DataProviderServiceStub(finance.channel)
    request = data_provider_pb2.GetSubjectRecordsRequest(
        provider="tax",
        fin=CITIZEN,
        scopes=[finance_pb2.SCOPE_INCOME],
        period=consent_request().consent.data_period,
        consent_id="x",
    )
    for caller in (bank(finance), finance.bearer("service", "visa", agency="DMX")):
        refused = await rejected(registers.GetSubjectRecords(request, metadata=caller))
        assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "FINANCE_ONLY")


async def test_the_database_keeps_no_record_a_provider_gave(finance: RunningService) -> None:
    consent = await approved(
        finance, consent_request(scopes=(finance_pb2.SCOPE_EMPLOYMENT, finance_pb2.SCOPE_PROPERTY))
    )
    package = await fetch(finance, consent.consent_id)
    assert package.scopes
    engine = create_engine(finance.database_url)
    with engine.connect() as connection:
        dump = "\n".join(
            repr(row)
            for table in ("consents", "access_log", "idempotency_keys", "outbox")
            for row in connection.execute(text(f"SELECT * FROM {table}"))
        )
    engine.dispose()
    for value in ("Azərsun", "Azadl", "BAK-2018-004512"):
        assert value not in dump and value.encode() not in dump.encode()


async def test_a_repeated_request_makes_one_consent_and_a_repeated_fetch_no_second_package(
    finance: RunningService,
) -> None:
    api = stub(finance)
    request = consent_request()
    first = await api.CreateConsent(request, metadata=bank(finance))
    assert await api.CreateConsent(request, metadata=bank(finance)) == first
    listed = await api.ListConsents(finance_service_pb2.ListConsentsRequest(), metadata=bank(finance))
    assert [c.consent_id for c in listed.consents] == [first.consent_id]

    consent = await approved(
        finance,
        consent_request(
            kind=finance_pb2.CONSENT_KIND_PERIODIC,
            frequency=finance_pb2.FETCH_FREQUENCY_DAILY,
            expire_days=90,
        ),
    )
    fetch_request = finance_service_pb2.FetchDataRequest(
        request_id=new_request_id(), consent_id=consent.consent_id
    )
    package = await api.FetchData(fetch_request, metadata=bank(finance))
    again = await rejected(api.FetchData(fetch_request, metadata=bank(finance)))
    # Finance kept no copy to send again: the replay names the package delivered.
    assert (again.code, again.reason, again.metadata) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "PACKAGE_ALREADY_DELIVERED",
        {"package_id": package.package_id, "digest": package.digest},
    )
    refreshed = await api.GetConsent(
        finance_service_pb2.GetConsentRequest(consent_id=consent.consent_id), metadata=bank(finance)
    )
    assert refreshed.fetch_count == 1


async def test_the_access_log_pages_newest_first_with_tokens_bound_to_the_citizen(
    finance: RunningService,
) -> None:
    api = stub(finance)
    consent = await approved(finance, consent_request())
    await fetch(finance, consent.consent_id)
    sequences: list[int] = []
    token = ""
    while True:
        page = await api.ListAccessLogEntries(
            finance_service_pb2.ListAccessLogEntriesRequest(page_size=2, page_token=token),
            metadata=citizen(finance),
        )
        sequences += [entry.sequence for entry in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert sequences == [3, 2, 1]
    first = await api.ListAccessLogEntries(
        finance_service_pb2.ListAccessLogEntriesRequest(page_size=1), metadata=citizen(finance)
    )
    foreign = await rejected(
        api.ListAccessLogEntries(
            finance_service_pb2.ListAccessLogEntriesRequest(page_size=1, page_token=first.next_page_token),
            metadata=citizen(finance, "1AB2C3D"),
        )
    )
    assert (foreign.code, list(foreign.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
