"""Every annotated route of every service that exists reaches its service through the gateway:
found, transcoded and answered by the service (which may well refuse the made-up request),
never a route the gateway cannot serve. A route added to a contract is covered here at once."""

from __future__ import annotations

import httpx
import pytest

from gateway.routes import Binding
from gateway.templates import PathTemplate
from tests.gateway.support import GATEWAY_DOMAIN, RunningGateway, error_of, token_header

pytestmark = pytest.mark.asyncio(loop_scope="module")


def example_path(path: PathTemplate) -> str:
    """A path the template matches: each variable's segments with a made-up id ("1")."""
    concrete = path.openapi_path
    for variable in path.variables:
        value = variable.pattern.replace("**", "1").replace("*", "1")
        concrete = concrete.replace(f"{{{variable.openapi_name}}}", value)
    return concrete


async def test_every_route_reaches_its_service(gateway: RunningGateway) -> None:
    bindings: list[Binding] = gateway.gateway.bindings
    assert bindings, "the gateway serves no route"
    missed = []
    async with gateway.client(headers=token_header("admin", "ops-admin-1")) as http:
        for binding in bindings:
            body: dict[str, object] | None = {} if binding.body and not binding.takes_raw_body else None
            response = await http.request(binding.http_method, example_path(binding.path), json=body)
            if not _answered_by_the_service(response, open311=binding.method.open311_errors):
                missed.append(
                    f"{binding.http_method} {binding.route}: {response.status_code} {response.text[:200]}"
                )

    assert not missed, "routes that did not reach their service:\n" + "\n".join(missed)


def _answered_by_the_service(response: httpx.Response, open311: bool) -> bool:
    if response.status_code < 400:
        return True
    if open311:
        # Open311's error array names no domain: a matched route's refusal below 500 is enough.
        errors = response.json()
        return response.status_code < 500 and isinstance(errors, list) and bool(errors)
    error = error_of(response)
    return error.http_status < 500 and (
        not error.of_type("google.rpc.ErrorInfo") or error.domain != GATEWAY_DOMAIN
    )
