"""The visa service's routes over HTTP through the gateway, against the real visa and payment
services: an applicant looks up the status and the e-visa with the passport number in a POST
body (never in a URL), the PDF comes as a named file, and an admin's PATCH changes only the
fields it names (AIP-134)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from sqlalchemy.orm import Session

from services.runtime.db import utcnow
from services.visa import decisions, queries
from services.visa.signing import VisaSigner
from tests.gateway.support import RunningGateway, error_of, json_of, token_header
from tests.support.servers import RunningService
from tests.visa.builders import applicant, application, in_database

pytestmark = pytest.mark.asyncio(loop_scope="module")

PASSPORT = "C01X00T47"
CARD = {"number": "4444333322221111", "expiryMonth": 12, "expiryYear": 2031, "cvc": "123"}


def changes() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@pytest.fixture(scope="module")
def visa(services: dict[str, RunningService]) -> RunningService:
    return services["asan.visa.v1"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def applied(gateway: RunningGateway) -> dict[str, Any]:
    """An application made and paid over HTTP alone, without a token, as an applicant does."""
    body = json_format.MessageToDict(application(applicant(PASSPORT)))
    async with gateway.client() as http:
        created = json_of(await http.post("/v1/applications", json=body, headers=changes()))
        paid = json_of(
            await http.post(
                f"/v1/payments/{created['application']['paymentId']}:confirm",
                json={"card": CARD, "confirmationSecret": created["paymentConfirmationSecret"]},
                headers=changes(),
            )
        )
    assert paid["status"] == "PAYMENT_STATUS_SUCCEEDED"
    return dict(created["application"])


def submit(visa: RunningService, number: str) -> None:
    """What visa's worker does on PaymentSucceeded (no worker runs here)."""

    def unit(session: Session) -> None:
        row = queries.application_by_number(session, number, for_update=True)
        assert row is not None
        decisions.submit(session, row, utcnow(), sandbox=False, signer=VisaSigner.from_env())

    in_database(visa, unit)


async def test_an_applicant_looks_up_the_status_with_the_passport_in_the_body(
    http: httpx.AsyncClient, applied: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    number = applied["applicationNumber"]
    with caplog.at_level(logging.INFO):
        found = await http.post(f"/v1/applications/{number}/status:lookup", json={"passportNumber": PASSPORT})
        wrong = await http.post(
            f"/v1/applications/{number}/status:lookup", json={"passportNumber": "X0000001"}
        )
    old_route = await http.get(f"/v1/applications/{number}/status", params={"passportNumber": PASSPORT})

    assert json_of(found)["applicationNumber"] == number
    assert error_of(wrong).http_status == 404
    assert error_of(old_route).reason == "ROUTE_NOT_FOUND"  # the GET with the passport in the query is gone
    assert PASSPORT not in str(found.request.url)
    # Neither the server's access log nor the gateway's own lines hold the passport.
    logged = [record.getMessage() + str(record.__dict__) for record in caplog.records]
    assert not [line for line in logged if PASSPORT in line]


async def test_the_evisa_is_a_pdf_to_save_named_for_the_application(
    http: httpx.AsyncClient, applied: dict[str, Any], visa: RunningService
) -> None:
    number = applied["applicationNumber"]
    submit(visa, number)
    approved = await http.post(
        f"/v1/applications/{number}:approveApplicant",
        json={"passportNumber": PASSPORT},
        headers={**token_header("officer", "dmx-officer-17", "DMX"), **changes()},
    )
    assert json_of(approved)["applicants"][0]["decision"] == "DECISION_APPROVED"

    document = await http.post(
        f"/v1/applications/{number}/evisaDocument:lookup", json={"passportNumber": PASSPORT}
    )

    assert document.status_code == 200 and document.content.startswith(b"%PDF-")
    assert document.headers["content-type"] == "application/pdf"
    assert document.headers["content-disposition"] == f'attachment; filename="evisa-{number}.pdf"'
    assert document.headers["x-content-type-options"] == "nosniff"


async def test_a_lookup_without_the_passport_names_what_is_required(
    http: httpx.AsyncClient, applied: dict[str, Any]
) -> None:
    error = error_of(
        await http.post(f"/v1/applications/{applied['applicationNumber']}/status:lookup", json={})
    )

    assert error.http_status == 400 and error.violations == {"passport_number": "REQUIRED"}


# --- Updates take a field mask (AIP-134) --------------------------------------------------------

ADMIN = token_header("admin", "ops-admin-1")


async def test_a_patch_changes_only_the_field_its_mask_names(http: httpx.AsyncClient) -> None:
    before = json_of(await http.get("/v1/countries/USA"))

    renamed = json_of(
        await http.patch(
            "/v1/countries/USA",
            params={"updateMask": "name"},
            json={"name": "United States of America", "rule": "COUNTRY_RULE_EMBASSY"},
            headers={**ADMIN, **changes()},
        )
    )

    assert renamed["name"] == "United States of America"
    assert (renamed["rule"], renamed["visaFreeStayDays"]) == (before["rule"], before["visaFreeStayDays"])
    assert renamed["version"] == before["version"] + 1


async def test_a_patch_without_a_mask_changes_the_fields_its_body_holds(http: httpx.AsyncClient) -> None:
    before = json_of(await http.get("/v1/countries/GEO"))
    assert before["rule"] == "COUNTRY_RULE_VISA_FREE"

    longer = json_of(
        await http.patch(
            "/v1/countries/GEO",
            json={"visaFreeStayDays": before["visaFreeStayDays"] + 30},
            headers={**ADMIN, **changes()},
        )
    )

    assert longer["visaFreeStayDays"] == before["visaFreeStayDays"] + 30
    assert (longer["name"], longer["rule"]) == (before["name"], before["rule"])


async def test_a_mask_naming_no_field_is_a_400_that_names_it(http: httpx.AsyncClient) -> None:
    error = error_of(
        await http.patch(
            "/v1/countries/DEU",
            params={"updateMask": "name,colour"},
            json={"name": "Germany"},
            headers={**ADMIN, **changes()},
        )
    )

    assert error.http_status == 400 and error.violations == {"update_mask": "UNKNOWN_FIELD"}
    (violation,) = error.of_type("google.rpc.BadRequest")[0]["fieldViolations"]
    assert violation["description"].startswith("Not fields of CountryPolicy: colour.")


async def test_a_masked_change_is_judged_with_the_fields_it_keeps(http: httpx.AsyncClient) -> None:
    """Switching a visa-free rule to e-visa without clearing its stay breaks the rule."""
    error = error_of(
        await http.patch(
            "/v1/countries/GEO", json={"rule": "COUNTRY_RULE_EVISA"}, headers={**ADMIN, **changes()}
        )
    )

    assert error.violations == {"policy.visa_free_stay_days": "OUT_OF_RANGE"}


async def test_the_holiday_calendar_takes_a_mask_of_its_holidays(http: httpx.AsyncClient) -> None:
    holidays = [{"date": {"year": 2031, "month": 1, "day": 1}, "name": "Yeni il bayramı"}]
    replaced = json_of(
        await http.patch(
            "/v1/holidayCalendars/2031",
            params={"updateMask": "holidays"},
            json={"holidays": holidays},
            headers={**ADMIN, **changes()},
        )
    )
    nothing = error_of(
        await http.patch(
            "/v1/holidayCalendars/2031",
            params={"updateMask": "year"},
            json={"holidays": holidays},
            headers={**ADMIN, **changes()},
        )
    )

    assert replaced["holidays"] == holidays
    assert nothing.violations == {"update_mask": "NOTHING_TO_CHANGE"}
