"""Who may reach whom, as the rendered NetworkPolicies decide it (the semantics Kubernetes
gives them, modelled in tests/deploy/support.py): only the gateway reaches the services'
gRPC ports, only Prometheus their metrics, each service only its own database."""

from __future__ import annotations

import pytest

from services import suite
from services.runtime.server import ServiceDefinition
from tests.deploy.support import (
    K8S,
    OVERLAYS,
    Manifest,
    Pod,
    deployed_services,
    load_yaml,
    mailing_services,
    of_kind,
    reachable,
    rendered,
    selects,
    workload_pods,
)

PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, "prometheus")


def contract_calls() -> set[tuple[str, str]]:
    """Calls between services by contract (deploy/k8s/README.md, "Network"), as (caller, callee):
    where a service's settings point at another's server, <CALLER>_..._TARGET=<callee>:<port>,
    or one of a list <CALLER>_..._TARGETS=<name>=<callee>:<port>,... (finance's providers)."""
    services = deployed_services()
    calls: set[tuple[str, str]] = set()
    for caller in services:
        kustomization = load_yaml(K8S / "base" / caller / "kustomization.yaml")
        for generator in kustomization.get("configMapGenerator", []):
            for literal in generator.get("literals", []):
                key, _, value = literal.partition("=")
                if key.endswith("_TARGET"):
                    targets = [value]
                elif key.endswith("_TARGETS"):
                    targets = [item.partition("=")[2] for item in value.split(",") if item]
                else:
                    continue
                calls |= {
                    (caller, host) for host in (t.partition(":")[0] for t in targets) if host in services
                }
    return calls


CONTRACT_CALLS = contract_calls()
INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, "ingress-nginx")
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"}, "coredns")
COLLECTOR = Pod("observability", {"app.kubernetes.io/name": "opentelemetry-collector"}, "otel-collector")
# The mail relay's submission port in production (STARTTLS; deploy/k8s/README.md, "Secrets":
# <service>-smtp); dev's relay takes mail on its own port (overlays/dev/mail-relay.yaml).
SUBMISSION_PORT = 587


def definition(service: str) -> ServiceDefinition:
    import importlib

    found: ServiceDefinition = importlib.import_module(f"services.{service}.service").definition
    return found


class Cluster:
    """An overlay's pods and policies, with the pods around them that the policies name."""

    def __init__(self, overlay: str) -> None:
        manifests = rendered(overlay)
        self.policies: list[Manifest] = of_kind(manifests, "NetworkPolicy")
        self.pods = workload_pods(manifests)
        self.namespace = self.pods["gateway"].namespace
        if overlay == "dev":  # the overlay's own StatefulSets
            self.databases = {s: self.pods[f"{s}-postgresql"] for s in deployed_services()}
            self.broker = self.pods["rabbitmq"]
            self.mail_relay = self.pods["mail-relay"]
            self.mail_port = container_port(manifests, "mail-relay", "smtp")
            data = self.namespace
        else:  # the operators' pods in asan-data, with the labels the README asks for
            data = "asan-data"
            self.databases = {
                s: Pod(data, {"asan.gov.az/database-of": s}, f"{s}-db") for s in deployed_services()
            }
            self.broker = Pod(data, {"asan.gov.az/event-broker": "true"}, "rabbitmq")
            self.mail_relay = Pod(data, {"asan.gov.az/smtp-relay": "true"}, "smtp-relay")
            self.mail_port = SUBMISSION_PORT
        self.databases["another"] = Pod(data, {"asan.gov.az/database-of": "another"}, "another-db")
        self.stranger = Pod(self.namespace, {"app": "debug-shell"}, "stranger")
        self.other_namespace = Pod("default", {"app.kubernetes.io/name": "gateway"}, "foreign-gateway")

    def can(self, source: Pod, target: Pod, port: int, protocol: str = "TCP") -> bool:
        return reachable(self.policies, source, target, port, protocol)


def container_port(manifests: list[Manifest], workload: str, name: str) -> int:
    """The number of a named port of a workload's containers."""
    deployment = next(m for m in of_kind(manifests, "Deployment") if m["metadata"]["name"] == workload)
    port: int = next(
        p["containerPort"]
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
        if p["name"] == name
    )
    return port


@pytest.fixture(params=OVERLAYS)
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return Cluster(request.param)


@pytest.mark.parametrize("service", deployed_services())
def test_only_the_gateway_reaches_a_service_s_grpc_port(cluster: Cluster, service: str) -> None:
    port = definition(service).grpc_port
    server = cluster.pods[service]
    assert cluster.can(cluster.pods["gateway"], server, port)
    for intruder in (
        cluster.stranger,
        cluster.pods[f"{service}-worker"],
        PROMETHEUS,
        INGRESS_CONTROLLER,
        cluster.other_namespace,
    ):
        assert not cluster.can(intruder, server, port), intruder.name


@pytest.mark.parametrize("service", deployed_services())
def test_only_prometheus_reaches_the_metrics_ports(cluster: Cluster, service: str) -> None:
    server, worker = cluster.pods[service], cluster.pods[f"{service}-worker"]
    metrics = definition(service).metrics_port
    worker_metrics = next(p["containerPort"] for p in worker_ports(cluster, service))
    assert cluster.can(PROMETHEUS, server, metrics)
    assert cluster.can(PROMETHEUS, worker, worker_metrics)
    for intruder in (cluster.stranger, cluster.pods["gateway"], INGRESS_CONTROLLER):
        assert not cluster.can(intruder, server, metrics), intruder.name
        assert not cluster.can(intruder, worker, worker_metrics), intruder.name
    impostor = Pod("asan-impostor", {"app.kubernetes.io/name": "prometheus"}, "impostor")
    assert not cluster.can(impostor, server, metrics), "Prometheus is the one in namespace monitoring"


def worker_ports(cluster: Cluster, service: str) -> list[dict[str, int]]:
    workload = next(
        w
        for w in of_kind(rendered(overlay_of(cluster)), "Deployment")
        if w["metadata"]["name"] == f"{service}-worker"
    )
    ports: list[dict[str, int]] = workload["spec"]["template"]["spec"]["containers"][0]["ports"]
    return ports


def overlay_of(cluster: Cluster) -> str:
    return "dev" if cluster.namespace == "asan-dev" else "prod"


@pytest.mark.parametrize("service", deployed_services())
def test_a_service_reaches_its_own_database_and_no_other(cluster: Cluster, service: str) -> None:
    own = cluster.databases[service]
    for pod in (cluster.pods[service], cluster.pods[f"{service}-worker"]):
        assert cluster.can(pod, own, 5432), pod.name
        assert not cluster.can(pod, cluster.databases["another"], 5432), pod.name
    for outsider in (cluster.pods["gateway"], cluster.stranger):
        assert not cluster.can(outsider, own, 5432), outsider.name


@pytest.mark.parametrize("service", deployed_services())
def test_only_the_worker_speaks_to_the_broker(cluster: Cluster, service: str) -> None:
    assert cluster.can(cluster.pods[f"{service}-worker"], cluster.broker, 5672)
    assert not cluster.can(cluster.pods[f"{service}-worker"], cluster.broker, 15672), (
        "AMQP only, no management"
    )
    assert not cluster.can(cluster.pods[service], cluster.broker, 5672), "the server only writes its outbox"
    assert not cluster.can(cluster.pods["gateway"], cluster.broker, 5672)


@pytest.mark.parametrize("service", mailing_services())
def test_a_worker_that_mails_reaches_the_mail_relay_on_its_smtp_port_only(
    cluster: Cluster, service: str
) -> None:
    worker = cluster.pods[f"{service}-worker"]
    assert cluster.can(worker, cluster.mail_relay, cluster.mail_port)
    assert not cluster.can(worker, cluster.mail_relay, 8025), "SMTP only, not the relay's page"
    internet = Pod("elsewhere", {}, "internet")
    for port in (25, 465, 587):
        assert not cluster.can(worker, internet, port), f"no mail to anywhere but the relay (port {port})"
    elsewhere = Pod("default", {"asan.gov.az/smtp-relay": "true"}, "a relay in another namespace")
    if overlay_of(cluster) == "prod":
        assert not cluster.can(worker, elsewhere, cluster.mail_port), "the relay is the one in asan-data"


def test_only_the_workers_that_mail_reach_the_mail_relay(cluster: Cluster) -> None:
    reaching = {
        name for name, pod in cluster.pods.items() if cluster.can(pod, cluster.mail_relay, cluster.mail_port)
    }
    assert reaching == {f"{service}-worker" for service in mailing_services()}
    assert not cluster.can(cluster.stranger, cluster.mail_relay, cluster.mail_port)


def test_dev_mails_go_to_the_dev_relay_that_the_secret_names() -> None:
    """The Secret <service>-smtp, the relay's Service and the policies agree: the URL the
    runtime reads (services.runtime.mail.SmtpRelay) leads to a pod the worker may reach."""
    import base64
    import os
    from unittest import mock

    from services.runtime.mail import SmtpRelay

    dev = Cluster("dev")
    manifests = rendered("dev")
    for service in mailing_services():
        worker = next(
            m for m in of_kind(manifests, "Deployment") if m["metadata"]["name"] == f"{service}-worker"
        )
        env = {v["name"]: v for v in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
        reference = env["ASAN_SMTP_URL"]["valueFrom"]["secretKeyRef"]
        secret = next(m for m in of_kind(manifests, "Secret") if m["metadata"]["name"] == reference["name"])
        url = base64.b64decode(secret["data"][reference["key"]]).decode()
        with mock.patch.dict(os.environ, {"ASAN_SMTP_URL": url}):
            relay = SmtpRelay.from_env()
        assert relay.username is None, "the dev relay takes mail without credentials"
        target = next(m for m in of_kind(manifests, "Service") if m["metadata"]["name"] == relay.host)
        (port,) = [p for p in target["spec"]["ports"] if p["port"] == relay.port]
        pods = [
            pod
            for pod in dev.pods.values()
            if selects({"matchLabels": target["spec"]["selector"]}, pod.labels)
        ]
        assert [pod.name for pod in pods] == ["mail-relay"]
        pod_port = container_port(manifests, "mail-relay", port["targetPort"])
        assert dev.can(dev.pods[f"{service}-worker"], pods[0], pod_port), f"{service}-worker -> {url}"


def test_the_calls_by_contract_are_read_from_the_services_settings() -> None:
    assert ("visa", "payment") in CONTRACT_CALLS, "VISA_PAYMENT_TARGET: visa pays its fee through payment"
    assert {("finance", "payment"), ("finance", "agro")} <= CONTRACT_CALLS, (
        "FINANCE_PROVIDER_TARGETS: finance reads state payments and farming from their registers"
    )
    assert ("agro", "payment") in CONTRACT_CALLS, "AGRO_PAYMENT_TARGET: agro pays subsidies through payment"


def test_only_finance_s_server_reaches_the_registers_it_reads(cluster: Cluster) -> None:
    """The providers' ports admit finance's server, not its worker; finance reaches no other
    service's gRPC port (test_services_call_no_other_service_than_their_contracts_say)."""
    for provider in ("payment", "agro"):
        port = definition(provider).grpc_port
        assert cluster.can(cluster.pods["finance"], cluster.pods[provider], port), provider
        assert not cluster.can(cluster.pods["finance-worker"], cluster.pods[provider], port), provider
    assert not cluster.can(cluster.pods["finance"], cluster.pods["visa"], definition("visa").grpc_port)


@pytest.mark.parametrize(("caller", "callee"), sorted(CONTRACT_CALLS))
def test_a_server_reaches_the_service_its_contract_calls(cluster: Cluster, caller: str, callee: str) -> None:
    port = definition(callee).grpc_port
    assert cluster.can(cluster.pods[caller], cluster.pods[callee], port)
    assert not cluster.can(cluster.pods[f"{caller}-worker"], cluster.pods[callee], port), "the server calls"
    assert not cluster.can(cluster.pods[caller], cluster.pods[callee], definition(callee).metrics_port)
    assert not cluster.can(cluster.pods[caller], cluster.pods[f"{callee}-worker"], port)


def test_services_call_no_other_service_than_their_contracts_say(cluster: Cluster) -> None:
    services = deployed_services()
    for caller in services:
        for callee in services:
            if caller == callee or (caller, callee) in CONTRACT_CALLS:
                continue
            for pod in (cluster.pods[caller], cluster.pods[f"{caller}-worker"]):
                assert not cluster.can(pod, cluster.pods[callee], definition(callee).grpc_port), (
                    f"{pod.name} -> {callee}"
                )


def test_the_gateway_is_reached_from_the_ingress_controller_and_prometheus_only(cluster: Cluster) -> None:
    gateway = cluster.pods["gateway"]
    assert cluster.can(INGRESS_CONTROLLER, gateway, 8080)
    assert cluster.can(PROMETHEUS, gateway, suite.GATEWAY_METRICS_PORT)
    assert not cluster.can(INGRESS_CONTROLLER, gateway, suite.GATEWAY_METRICS_PORT)  # never public
    assert not cluster.can(cluster.stranger, gateway, 8080)
    assert not cluster.can(cluster.stranger, gateway, suite.GATEWAY_METRICS_PORT)
    assert not cluster.can(gateway, cluster.databases["another"], 5432)


def test_every_pod_may_ask_the_cluster_dns_and_nothing_else_outside(cluster: Cluster) -> None:
    internet = Pod("elsewhere", {}, "internet")
    for pod in cluster.pods.values():
        assert cluster.can(pod, KUBE_DNS, 53, "UDP"), pod.name
        assert cluster.can(pod, KUBE_DNS, 53, "TCP"), pod.name
        assert not cluster.can(pod, internet, 443), pod.name


def test_every_pod_sends_spans_to_the_collector_and_nowhere_else(cluster: Cluster) -> None:
    elsewhere = Pod("observability", {"app.kubernetes.io/name": "grafana"}, "grafana")
    for pod in cluster.pods.values():
        assert cluster.can(pod, COLLECTOR, 4317), pod.name
        assert cluster.can(pod, COLLECTOR, 4318), pod.name
        assert not cluster.can(pod, COLLECTOR, 8888), pod.name
        assert not cluster.can(pod, elsewhere, 4317), pod.name


def test_pods_without_a_policy_of_their_own_are_shut(cluster: Cluster) -> None:
    assert not cluster.can(cluster.stranger, cluster.stranger, 8000), "default deny covers every pod"


def test_the_dev_databases_admit_their_own_service_only() -> None:
    dev = Cluster("dev")
    for service in deployed_services():
        database = dev.pods[f"{service}-postgresql"]
        assert dev.can(dev.pods[service], database, 5432)
        assert not dev.can(dev.pods["gateway"], database, 5432)
        another_service = Pod(
            dev.namespace,
            {"app.kubernetes.io/name": "another", "app.kubernetes.io/component": "server"},
            "another",
        )
        assert not dev.can(another_service, database, 5432)
    rabbitmq = dev.pods["rabbitmq"]
    assert dev.can(dev.pods[f"{deployed_services()[0]}-worker"], rabbitmq, 5672)
    assert not dev.can(dev.pods["gateway"], rabbitmq, 5672)
    assert dev.can(PROMETHEUS, rabbitmq, 15692)
