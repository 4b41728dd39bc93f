"""TLS on every gRPC hop, as the overlays deploy it: cert-manager objects of the shape its
CRDs accept (kubernetes-validate has no schema for them, as for PrometheusRule), a
certificate per process naming it, mounted where the runtime reads it, and each service's
allowed callers equal to the peers its NetworkPolicy admits, so that the two rules cannot
drift apart."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from services.runtime.config import DEFAULT_TRUST_DOMAIN
from services.runtime.tls import identity_uri
from tests.deploy.support import (
    OVERLAYS,
    Manifest,
    config_map,
    deployed_services,
    named,
    of_kind,
    reachable,
    rendered,
    workload_pods,
)
from tests.deploy.test_network_policies import definition

# The fields of cert-manager.io/v1 (CRDs of cert-manager 1.x) the suite may write, with the
# CRD's enums; anything else (a misspelt field, an unknown usage) fails here rather than at
# `kubectl apply` against a cluster.
_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_ISSUER_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"const": "cert-manager.io"},
    },
}
_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"}
USAGES = [
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime",
    "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
    "microsoft sgc", "netscape sgc",
]  # fmt: skip
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
}
CERTIFICATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "additionalProperties": False,
            "anyOf": [{"required": [field]} for field in ("commonName", "dnsNames", "uris", "ipAddresses")],
            "properties": {
                "secretName": {"type": "string", "minLength": 1},
                "secretTemplate": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "issuerRef": _ISSUER_REF,
                "commonName": {"type": "string", "maxLength": 64},
                "dnsNames": _STRINGS,
                "uris": _STRINGS,
                "ipAddresses": _STRINGS,
                "isCA": {"type": "boolean"},
                "duration": _DURATION,
                "renewBefore": _DURATION,
                "usages": {"type": "array", "items": {"enum": USAGES}},
                "privateKey": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "encoding": {"enum": ["PKCS1", "PKCS8"]},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                        "size": {"type": "integer"},
                    },
                },
            },
        },
    },
}
ISSUER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            # One kind of issuer each (the suite uses no ACME, Vault or Venafi inside).
            "oneOf": [{"required": ["selfSigned"]}, {"required": ["ca"]}],
            "properties": {
                "selfSigned": {"type": "object", "additionalProperties": False},
                "ca": {
                    "type": "object",
                    "required": ["secretName"],
                    "additionalProperties": False,
                    "properties": {"secretName": {"type": "string", "minLength": 1}},
                },
            },
        },
    },
}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def certificates(manifests: list[Manifest]) -> dict[str, Manifest]:
    """The Certificates, by the Secret they write."""
    return {c["spec"]["secretName"]: c for c in of_kind(manifests, "Certificate")}


def container(manifests: list[Manifest], workload: str) -> tuple[Manifest, dict[str, Any]]:
    deployment = named(manifests, "Deployment", workload)
    spec = deployment["spec"]["template"]["spec"]
    found: dict[str, Any] = next(c for c in spec["containers"] if c["name"] in ("server", "gateway"))
    return deployment, found


def mounted_secret(deployment: Manifest, found: dict[str, Any], path: str) -> str:
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mount = next(m for m in found["volumeMounts"] if m["mountPath"].rstrip("/") == path.rstrip("/"))
    secret: str = volumes[mount["name"]]["secret"]["secretName"]
    return secret


def test_the_cert_manager_objects_have_the_shape_their_crds_accept(overlay: str) -> None:
    manifests = rendered(overlay)
    assert of_kind(manifests, "Certificate") and of_kind(manifests, "Issuer")
    for manifest in of_kind(manifests, "Certificate"):
        jsonschema.validate(manifest, CERTIFICATE_SCHEMA)
    for manifest in of_kind(manifests, "Issuer"):
        jsonschema.validate(manifest, ISSUER_SCHEMA)
    assert not of_kind(manifests, "ClusterIssuer"), "the suite's authority is its namespace's own"


def test_every_certificate_comes_from_the_suite_s_own_authority(overlay: str) -> None:
    manifests = rendered(overlay)
    issuers = {i["metadata"]["name"]: i["spec"] for i in of_kind(manifests, "Issuer")}
    by_secret = certificates(manifests)
    for certificate in by_secret.values():
        reference = certificate["spec"]["issuerRef"]
        assert reference.get("kind", "Issuer") == "Issuer" and reference["name"] in issuers
        issuer = issuers[reference["name"]]
        if certificate["spec"].get("isCA"):
            assert "selfSigned" in issuer, "only the authority is self-signed"
            continue
        assert "ca" in issuer, f"{certificate['metadata']['name']} must be signed by the CA issuer"
        authority = by_secret[issuer["ca"]["secretName"]]
        assert authority["spec"]["isCA"] is True


@pytest.mark.parametrize("workload", [*deployed_services(), "gateway"])
def test_each_process_mounts_a_certificate_naming_it_where_the_runtime_reads_it(
    overlay: str, workload: str
) -> None:
    manifests = rendered(overlay)
    runtime = config_map(manifests, "asan-runtime")
    assert runtime.get("ASAN_TLS", "on") != "off", "TLS is off only on one machine (make run)"
    deployment, found = container(manifests, workload)
    secret = mounted_secret(deployment, found, runtime["ASAN_TLS_DIR"])
    certificate = certificates(manifests)[secret]["spec"]
    assert certificate["uris"] == [identity_uri(runtime["ASAN_TLS_TRUST_DOMAIN"], workload)]
    assert runtime["ASAN_TLS_TRUST_DOMAIN"] == DEFAULT_TRUST_DOMAIN
    assert "client auth" in certificate["usages"], "it calls services"
    if workload != "gateway":
        # Its callers dial <service>:<port>: the name they verify.
        assert "server auth" in certificate["usages"] and workload in certificate["dnsNames"]
    assert certificate["privateKey"]["rotationPolicy"] == "Always", "a renewal is a new key"


@pytest.mark.parametrize("service", deployed_services())
def test_a_service_s_allowed_callers_are_the_peers_its_network_policy_admits(
    overlay: str, service: str
) -> None:
    """One rule, said twice: by the network (which pods reach the gRPC port) and by the
    service (whose certificate it takes calls from)."""
    manifests = rendered(overlay)
    pods = workload_pods(manifests)
    policies = of_kind(manifests, "NetworkPolicy")
    port = definition(service).grpc_port
    admitted = {
        name
        for name, pod in pods.items()
        if name != service and reachable(policies, pod, pods[service], port)
    }
    variable = f"{service.upper()}_ALLOWED_CALLERS"
    allowed = config_map(manifests, service)[variable].split(",")
    assert sorted(allowed) == sorted(admitted), (
        f"{variable} says {sorted(allowed)}; its NetworkPolicy admits {sorted(admitted)}"
    )
