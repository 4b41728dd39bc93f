"""The whole journey through the real gateway over HTTP/JSON: a bank asks, the citizen reads the
request in plain words and approves, the bank fetches, the package verifies offline with the
published key, the citizen sees the entry, and the chain verifies."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from services.runtime.signing import verify_signature
from tests.finance.builders import CITIZEN, new_request_id
from tests.gateway.support import gateway_for
from tests.support.servers import RunningService


def asked_for(days: int) -> dict[str, object]:
    """A bank's consent request as HTTP/JSON: income and property of the first quarter."""
    return {
        "fin": CITIZEN,
        "purpose": "PURPOSE_CONSUMER_LOAN",
        "scopes": ["SCOPE_INCOME", "SCOPE_PROPERTY"],
        "dataPeriod": {
            "startDate": {"year": 2026, "month": 1, "day": 1},
            "endDate": {"year": 2026, "month": 3, "day": 31},
        },
        "kind": "CONSENT_KIND_ONE_TIME",
        "expireTime": (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_bank_asks_citizen_approves_bank_fetches_through_the_gateway(finance: RunningService) -> None:
    bank = bearer(finance.token("bank", "officer@kapitalbank", institution="KAPITALBANK"))
    citizen = bearer(finance.token("citizen", CITIZEN))
    async with gateway_for({"asan.finance.v1": finance}, finance.auth) as gateway, gateway.client() as http:
        signing_key = (await http.get("/v1/signingKey")).json()
        # Asking for a one-time consent beyond ten days: the field says what to fix.
        too_long = await http.post(
            "/v1/consents", params={"request_id": new_request_id()}, json=asked_for(days=30), headers=bank
        )
        assert too_long.status_code == 400 and "consent.expire_time" in too_long.text

        asked = await http.post(
            "/v1/consents", params={"request_id": new_request_id()}, json=asked_for(days=5), headers=bank
        )
        assert asked.status_code == 200, asked.text
        consent_id = asked.json()["consentId"]

        pending = await http.get("/v1/consents", params={"status": "CONSENT_STATUS_PENDING"}, headers=citizen)
        [shown] = pending.json()["consents"]
        english = next(text["text"] for text in shown["summary"] if text["locale"] == "en")
        assert english.startswith(
            "Kapital Bank asks for your income, your property from 2026-01-01 to 2026-03-31"
        )

        approved = await http.post(
            f"/v1/consents/{consent_id}:approve", json={"requestId": new_request_id()}, headers=citizen
        )
        assert approved.json()["status"] == "CONSENT_STATUS_ACTIVE"
        artefact = approved.json()["artefact"]
        verify_signature(
            signing_key["publicKeyPem"],
            base64.b64decode(artefact["content"]),
            base64.b64decode(artefact["signature"]),
        )

        fetched = await http.post(
            f"/v1/consents/{consent_id}:fetch", json={"requestId": new_request_id()}, headers=bank
        )
        assert fetched.status_code == 200, fetched.text
        package = fetched.json()
        content = base64.b64decode(package["signed"]["content"])
        verify_signature(
            signing_key["publicKeyPem"], content, base64.b64decode(package["signed"]["signature"])
        )
        assert json.loads(content)["providers"] == ["property", "tax"]

        log = await http.get("/v1/accessLog/entries", headers=citizen)
        newest = log.json()["entries"][0]
        assert (newest["action"], newest["packageDigest"]) == (
            "ACCESS_ACTION_DATA_FETCHED",
            package["digest"],
        )
        assert newest["institutionName"] == "Kapital Bank"

        verified = await http.post(
            "/v1/accessLog:verify", json={"requestId": new_request_id()}, headers=citizen
        )
        assert verified.json()["intact"] is True
        assert verified.json()["entriesChecked"] == "3"

        # A bank never reads anyone's access log.
        refused = await http.get("/v1/accessLog/entries", headers=bank)
        assert refused.status_code == 403
