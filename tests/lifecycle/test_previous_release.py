"""Rolling deploys: while Kubernetes replaces pods one at a time, the previous release serves on
the schema the new release migrated (expand, migrate, contract: docs/migrations.md). As in
production: each database is migrated by the previous release's own code (taken from git),
then to the new head by the new code, which leaves it exactly as the new code declares; and
the previous release's servers serve every service's creates, reads and lists on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from asan.agro.v1 import agro_pb2, agro_service_pb2, agro_service_pb2_grpc
from asan.appeals.v1 import appeals_service_pb2, appeals_service_pb2_grpc
from asan.finance.v1 import finance_service_pb2, finance_service_pb2_grpc
from asan.payment.v1 import payment_service_pb2, payment_service_pb2_grpc
from asan.visa.v1 import visa_service_pb2, visa_service_pb2_grpc
from services.runtime.auth import PrincipalKind
from services.runtime.migrations import upgrade
from services.runtime.tokens import mint
from services.suite import definitions
from tests.agro.builders import DISTRICT, LAT, LON, farmer, square
from tests.appeals.builders import submit_request
from tests.finance.builders import consent_request
from tests.lifecycle.previous_release import export, migrate, old_servers, previous_release
from tests.lifecycle.test_schema_drift import differences
from tests.payment.builders import create_request, passport_duty, shared_auth
from tests.visa.builders import application
from tests.visa.builders import create_request as application_request

SERVICES = {definition.name: definition for definition in definitions()}
CITIZEN = "5ZK3T9P"
Auth = tuple[tuple[str, str], ...]


def bearer(kind: str, subject: str, agency: str | None = None, institution: str | None = None) -> Auth:
    token = mint(
        shared_auth(), PrincipalKind(kind), subject, agency_code=agency, institution_code=institution
    )
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def release_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        commit = previous_release()
    except LookupError as error:
        pytest.skip(f"no previous release to run (a shallow clone? fetch the history): {error}")
    return export(commit, tmp_path_factory.mktemp("previous-release"))


async def smoke_payment(channel: grpc.aio.Channel) -> None:
    stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
    citizen = bearer("citizen", CITIZEN)
    created = await stub.CreatePayment(create_request(passport_duty(CITIZEN)), metadata=citizen)
    read = await stub.GetPayment(
        payment_service_pb2.GetPaymentRequest(payment_id=created.payment_id), metadata=citizen
    )
    listed = await stub.ListPayments(payment_service_pb2.ListPaymentsRequest(), metadata=citizen)
    assert read == created
    assert created.payment_id in [payment.payment_id for payment in listed.payments]


async def smoke_visa(channel: grpc.aio.Channel) -> None:
    stub = visa_service_pb2_grpc.VisaServiceStub(channel)
    officer = bearer("officer", "dmx-officer-1", "DMX")
    created = await stub.CreateApplication(application_request(application()))
    number = created.application.application_number
    read = await stub.GetApplication(
        visa_service_pb2.GetApplicationRequest(application_number=number), metadata=officer
    )
    await stub.ListApplications(visa_service_pb2.ListApplicationsRequest(), metadata=officer)
    assert read.application_number == number
    assert created.application.payment_id and created.payment_confirmation_secret


async def smoke_finance(channel: grpc.aio.Channel) -> None:
    stub = finance_service_pb2_grpc.FinanceServiceStub(channel)
    bank = bearer("bank", "officer@kapitalbank", institution="KAPITALBANK")
    created = await stub.CreateConsent(consent_request("SBX0001"), metadata=bank)
    read = await stub.GetConsent(
        finance_service_pb2.GetConsentRequest(consent_id=created.consent_id), metadata=bank
    )
    listed = await stub.ListConsents(
        finance_service_pb2.ListConsentsRequest(), metadata=bearer("citizen", "SBX0001")
    )
    assert read == created
    assert created.consent_id in [consent.consent_id for consent in listed.consents]


async def smoke_appeals(channel: grpc.aio.Channel) -> None:
    stub = appeals_service_pb2_grpc.AppealsServiceStub(channel)
    citizen = bearer("citizen", CITIZEN)
    created = await stub.SubmitAppeal(submit_request(), metadata=citizen)
    read = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=created.appeal_number), metadata=citizen
    )
    listed = await stub.ListAppeals(appeals_service_pb2.ListAppealsRequest(), metadata=citizen)
    assert read.appeal_number == created.appeal_number
    assert created.appeal_number in [appeal.appeal_number for appeal in listed.appeals]


async def smoke_agro(channel: grpc.aio.Channel) -> None:
    stub = agro_service_pb2_grpc.AgroServiceStub(channel)
    citizen = bearer("citizen", CITIZEN)
    await stub.RegisterFarmer(
        agro_service_pb2.RegisterFarmerRequest(request_id=_uuid(), farmer=farmer()), metadata=citizen
    )
    parcel = agro_pb2.Parcel(
        registry_number="SAA-00000001",
        land_document="TK-2019-004512",
        district=DISTRICT,
        contour_geojson=square(LON, LAT, 0.01),
    )
    created = await stub.CreateParcel(
        agro_service_pb2.CreateParcelRequest(request_id=_uuid(), parcel=parcel), metadata=citizen
    )
    read = await stub.GetParcel(
        agro_service_pb2.GetParcelRequest(parcel_id=created.parcel_id), metadata=citizen
    )
    listed = await stub.ListParcels(agro_service_pb2.ListParcelsRequest(), metadata=citizen)
    assert read == created
    assert created.parcel_id in [found.parcel_id for found in listed.parcels]


def _uuid() -> str:
    return str(uuid.uuid4())


SMOKES = {
    "payment": smoke_payment,
    "visa": smoke_visa,
    "finance": smoke_finance,
    "appeals": smoke_appeals,
    "agro": smoke_agro,
}


def test_every_service_has_a_smoke_of_the_previous_release() -> None:
    assert set(SMOKES) == set(SERVICES)


# Ten Python processes start (five migrations, five servers): minutes on a crowded machine.
@pytest.mark.timeout(400)
async def test_the_previous_release_serves_on_the_schema_the_new_one_migrated(
    release_tree: Path, new_database_url: Callable[[str, str], str], tmp_path: Path
) -> None:
    databases = {name: new_database_url("postgres", name) for name in SERVICES}
    migrate(release_tree, databases)
    for name, url in databases.items():
        upgrade(url, SERVICES[name].migrations)
        assert differences(url, SERVICES[name]) == [], f"{name}: the upgraded schema is not the code's"

    auth = shared_auth()
    env = {
        "ASAN_AUTH_PUBLIC_KEY_FILE": str(auth.public_key_file),
        "ASAN_AUTH_PRIVATE_KEY_FILE": str(auth.private_key_file),
        "ASAN_SHUTDOWN_DRAIN_SECONDS": "0",
        "ASAN_SHUTDOWN_GRACE_SECONDS": "1",
        "AMQP_URI": "memory://",
    }
    with old_servers(release_tree, databases, env, tmp_path) as servers:
        for name, server in servers.items():
            async with grpc.aio.insecure_channel(server.address) as channel:
                try:
                    await SMOKES[name](channel)
                except grpc.RpcError as error:
                    log = server.log.read_text()[-3000:]
                    raise AssertionError(
                        f"the previous {name} failed on the new schema: {error}\n{log}"
                    ) from error
