"""A farmer's journey through the real gateway (HTTP/JSON) to a real agro server: register,
map a parcel, the officer sets its eligible area, quote, declare (a retry is the same
declaration), monitoring and approval by the district office, the public totals without a
token; and a stranger's look at the declaration is a 404."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.runtime.config import AuthConfig
from tests.agro.builders import DISTRICT, FARMER_FIN, IBAN, LAT, LON, NEIGHBOUR_FIN, agro_service, square
from tests.gateway.support import RunningGateway, error_of, gateway_for, json_of, token_header
from tests.payment.builders import new_request_id, shared_auth
from tests.support.servers import RunningService

AGRO_PACKAGE = "asan.agro.v1"


@pytest.fixture
async def gateway(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningGateway]:
    auth: AuthConfig = shared_auth()
    async with agro_service(database_url, monkeypatch) as agro:
        services: dict[str, RunningService] = {AGRO_PACKAGE: agro}
        async with gateway_for(services, auth) as running:
            yield running


async def test_register_map_declare_and_approve_through_the_gateway(gateway: RunningGateway) -> None:
    farmer = token_header("citizen", FARMER_FIN)
    officer = token_header("officer", "ktn-saatli-1", f"KTN_{DISTRICT}")
    async with gateway.client() as http:
        registered = json_of(
            await http.post(
                "/v1/agro/farmers",
                params={"requestId": new_request_id()},
                json={
                    "kind": "FARMER_KIND_INDIVIDUAL",
                    "displayName": "Əli Məmmədov",
                    "iban": IBAN,
                    "inputCardReference": "AQRAR-0001",
                },
                headers=farmer,
            )
        )
        assert registered["fin"] == FARMER_FIN
        # The FIN travels in the body of a POST, never in a URL that proxies and logs keep.
        looked_up = json_of(
            await http.post("/v1/agro/farmers:lookup", json={"fin": FARMER_FIN}, headers=officer)
        )
        assert looked_up == registered
        parcel = json_of(
            await http.post(
                "/v1/agro/parcels",
                params={"requestId": new_request_id()},
                json={
                    "registryNumber": "SAA-0042",
                    "landDocument": "TK-2019-004512",
                    "district": DISTRICT,
                    "contourGeojson": square(LON, LAT, 0.01),
                },
                headers=farmer,
            )
        )
        parcel_id = parcel["parcelId"]
        json_of(
            await http.post(
                f"/v1/agro/parcels/{parcel_id}:setEligibleArea",
                json={"requestId": new_request_id(), "eligibleAreaSquareMetres": parcel["areaSquareMetres"]},
                headers=officer,
            )
        )
        body = {
            "parcelId": parcel_id,
            "crop": "CROP_WHEAT",
            "contourGeojson": square(LON, LAT, 0.006),
            "analysisReference": "AKT-2026-0091",
            "insuranceReference": "AIF-2026-55120",
        }
        quote = json_of(
            await http.post(
                "/v1/agro/declarations:quote",
                params={"requestId": new_request_id()},
                json=body,
                headers=farmer,
            )
        )
        assert [tier["coefficientHundredths"] for tier in quote["tiers"]] == [100, 80]

        request_id = new_request_id()
        declared = json_of(
            await http.post(
                "/v1/agro/declarations", params={"requestId": request_id}, json=body, headers=farmer
            )
        )
        again = json_of(
            await http.post(
                "/v1/agro/declarations", params={"requestId": request_id}, json=body, headers=farmer
            )
        )
        assert again == declared
        assert declared["subsidy"]["total"] == quote["total"]
        number = declared["declarationNumber"]

        stranger = await http.get(
            f"/v1/agro/declarations/{number}", headers=token_header("citizen", NEIGHBOUR_FIN)
        )
        assert (stranger.status_code, error_of(stranger).reason) == (404, "DECLARATION_NOT_FOUND")

        json_of(
            await http.post(
                f"/v1/agro/declarations/{number}:recordMonitoring",
                json={
                    "requestId": new_request_id(),
                    "monitoredAreaSquareMetres": declared["areaSquareMetres"],
                },
                headers=officer,
            )
        )
        approved = json_of(
            await http.post(
                f"/v1/agro/declarations/{number}:approve",
                json={"requestId": new_request_id()},
                headers=officer,
            )
        )
        assert approved["status"] == "DECLARATION_STATUS_APPROVED"
        subsidy = approved["subsidy"]
        assert int(subsidy["cashPart"]["minorUnits"]) + int(subsidy["cardPart"]["minorUnits"]) == int(
            subsidy["total"]["minorUnits"]
        )

        totals = json_of(await http.get("/v1/agro/seasons/2026/aggregates"))
        [row] = totals["aggregates"]
        assert row["district"] == DISTRICT and row["approvedSubsidies"] == subsidy["total"]
        assert FARMER_FIN not in str(totals)
