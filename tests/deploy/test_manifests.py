"""deploy/k8s as Kubernetes will see it: every overlay rendered by `kubectl kustomize`,
validated against the 1.32 schemas, and read for what a reviewer would check by hand."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from services import suite
from services.runtime.server import ServiceDefinition
from tests.deploy.support import (
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    Manifest,
    config_map,
    deployed_services,
    load_yaml,
    mailing_services,
    named,
    of_kind,
    rendered,
    rendered_text,
    run,
    selects,
    service_names,
    tool,
)

WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet")


def definition(service: str) -> ServiceDefinition:
    found: ServiceDefinition = importlib.import_module(f"services.{service}.service").definition
    return found


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def seconds(quantity: str) -> float:
    return float(quantity)


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders(overlay: str) -> None:
    kinds = {m["kind"] for m in rendered(overlay)}
    assert {"Deployment", "Service", "NetworkPolicy", "PrometheusRule"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid_for_kubernetes_1_32(overlay: str, tmp_path: Path) -> None:
    validate = tool("kubernetes-validate")
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(rendered_text(overlay))
    result = run(validate, "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(manifest))
    # Custom resources (ServiceMonitor, PrometheusRule, ...) have no schema here: a warning.
    errors = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("WARN")]
    assert result.returncode == 0 and not errors, "\n".join(errors)


# --- every workload: hardened, probed, bounded -------------------------------------------------


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_every_container_is_locked_down(overlay: str) -> None:
    for workload in of_kind(rendered(overlay), *WORKLOADS):
        name = workload["metadata"]["name"]
        pod = pod_spec(workload).get("securityContext", {})
        for container in containers(workload):
            where = f"{overlay} {name}/{container['name']}"
            context = container.get("securityContext", {})
            assert context.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            seccomp = context.get("seccompProfile", pod.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            assert context.get("privileged") is not True, where
        assert pod_spec(workload).get("automountServiceAccountToken") is False, f"{overlay} {name}"


def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for workload in of_kind(rendered(overlay), *WORKLOADS):
        for container in containers(workload):
            where = f"{overlay} {workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for resource, parse in (("cpu", cpu), ("memory", memory)):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                assert request and limit, f"{where}: {resource} request and limit"
                assert parse(request) <= parse(limit), f"{where}: {resource} request above limit"


def test_every_long_running_container_has_startup_readiness_and_liveness_probes(overlay: str) -> None:
    for workload in of_kind(rendered(overlay), "Deployment", "StatefulSet"):
        for container in pod_spec(workload)["containers"]:
            where = f"{overlay} {workload['metadata']['name']}/{container['name']}"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in container, f"{where}: no {probe}"


def test_the_read_only_root_filesystem_leaves_tmp_writable(overlay: str) -> None:
    for workload in of_kind(rendered(overlay), "Deployment"):
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        for container in containers(workload):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{workload['metadata']['name']}/{container['name']}"
            assert "emptyDir" in volumes[mounts["/tmp"]]


# --- the services -------------------------------------------------------------------------------


def test_every_service_is_deployed() -> None:
    missing = sorted(set(service_names()) - set(deployed_services()))
    assert not missing, (
        f"services with no deploy/k8s/base/<name>/: {missing}; "
        "follow deploy/k8s/README.md, 'Adding a service'"
    )


# What ../../components make of every service; a service's own folder makes none of these.
COMPONENT_KINDS = {
    "Deployment",
    "Service",
    "ServiceAccount",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
    "PodMonitor",
}


def documents(path: Path) -> list[Manifest]:
    import yaml

    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("service", deployed_services())
def test_a_service_s_folder_holds_only_what_is_its_own(service: str) -> None:
    """The server, the worker and what surrounds them come from the shared components; the
    folder gives its parameters and patches in what only this service has."""
    folder = K8S / "base" / service
    kustomization = load_yaml(folder / "kustomization.yaml")
    components = kustomization.get("components", [])
    assert components[:1] == ["../../components/grpc-service"]
    assert ("../../components/event-worker" in components) == suite.has_worker(service)
    assert ("../../components/notice-mail" in components) == (service in mailing_services()), (
        "a worker that mails its notices needs the relay (components/notice-mail), no other does"
    )
    resources = kustomization.get("resources", [])
    patches = [patch["path"] for patch in kustomization.get("patches", []) if "path" in patch]
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).as_posix()
        assert relative == "kustomization.yaml" or relative in resources + patches, (
            f"base/{service}/{relative} is neither a resource nor a patch of its kustomization"
        )
    made = [doc for resource in resources for doc in documents(folder / resource)]
    assert not [doc["kind"] for doc in made if doc["kind"] in COMPONENT_KINDS], (
        f"base/{service} makes objects of its own that the components make for every service"
    )
    parameters = [doc for doc in made if doc["kind"] == "ServiceParameters"]
    assert len(parameters) == 1, "one ServiceParameters, which the components read"
    assert parameters[0]["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    spec = definition(service)
    assert parameters[0]["metadata"]["name"] == service
    assert parameters[0]["spec"] == {
        "envPrefix": service.upper(),
        "grpcPort": spec.grpc_port,
        "metricsPort": spec.metrics_port,
        "grpcService": parameters[0]["spec"]["grpcService"],
    }
    assert parameters[0]["spec"]["grpcService"] in spec.grpc_services


def test_the_components_leave_no_placeholder(overlay: str) -> None:
    text = rendered_text(overlay)
    left = re.findall(r"(?<![A-Z_])SERVICE(?![A-Z])\S*", text)
    assert not left, f"template names not replaced (components/*/kustomization.yaml): {left}"
    assert not re.search(r"(?i)port: 0\b", text), "a template's port 0 was not replaced"
    assert "ServiceParameters" not in text, "the parameters are read while rendering, never applied"


@pytest.mark.parametrize("service", deployed_services())
def test_each_service_has_its_server_worker_and_surroundings(overlay: str, service: str) -> None:
    manifests = rendered(overlay)
    named(manifests, "Deployment", service)
    named(manifests, "Deployment", f"{service}-worker")
    named(manifests, "Service", service)
    named(manifests, "HorizontalPodAutoscaler", service)
    named(manifests, "PodDisruptionBudget", service)
    named(manifests, "ServiceMonitor", service)
    named(manifests, "PodMonitor", f"{service}-worker")
    account = named(manifests, "ServiceAccount", service)
    assert account["automountServiceAccountToken"] is False
    config = config_map(manifests, service)
    prefix = service.upper()
    assert int(config[f"{prefix}_GRPC_PORT"]) == definition(service).grpc_port
    assert int(config[f"{prefix}_METRICS_PORT"]) == definition(service).metrics_port
    assert (K8S / "base" / service / "kustomization.yaml").exists()


@pytest.mark.parametrize("service", deployed_services())
def test_the_server_is_probed_over_grpc_health_on_its_plaintext_probe_port(
    overlay: str, service: str
) -> None:
    spec = definition(service)
    server = next(
        c
        for c in pod_spec(named(rendered(overlay), "Deployment", service))["containers"]
        if c["name"] == "server"
    )
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    # The gRPC port speaks TLS, which the kubelet's probes do not: they ask the plaintext
    # probe port, which serves health alone (services/runtime/server.py).
    probe_port = int(config_map(rendered(overlay), "asan-runtime")["ASAN_PROBE_PORT"])
    assert ports == {"grpc": spec.grpc_port, "metrics": spec.metrics_port, "probes": probe_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"]["port"] == probe_port, probe
    # Ready means this service's methods answer, not only the process: the named service.
    assert server["readinessProbe"]["grpc"]["service"] in spec.grpc_services
    assert server["args"] == ["serve"]


@pytest.mark.parametrize("service", deployed_services())
def test_the_database_is_migrated_before_the_server_starts(overlay: str, service: str) -> None:
    deployment = named(rendered(overlay), "Deployment", service)
    init = pod_spec(deployment).get("initContainers", [])
    server = next(c for c in pod_spec(deployment)["containers"] if c["name"] == "server")
    assert [c["args"] for c in init] == [["migrate"]]
    assert init[0]["image"] == server["image"]
    assert init[0]["env"] == [e for e in server["env"] if e["name"] == f"{service.upper()}_DATABASE_URL"]


@pytest.mark.parametrize("service", deployed_services())
def test_the_worker_is_one_relay_replaced_not_overlapped(overlay: str, service: str) -> None:
    worker = named(rendered(overlay), "Deployment", f"{service}-worker")
    assert worker["spec"]["replicas"] == 1
    assert worker["spec"]["strategy"]["type"] == "Recreate"
    container = pod_spec(worker)["containers"][0]
    assert container["args"] == ["worker"]
    server = named(rendered(overlay), "Deployment", service)
    assert container["image"] == pod_spec(server)["containers"][0]["image"], "one image, another command"
    metrics_port = int(config_map(rendered(overlay), service)["ASAN_WORKER_METRICS_PORT"])
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": metrics_port}


def test_pods_outlive_their_drain(overlay: str) -> None:
    manifests = rendered(overlay)
    runtime = config_map(manifests, "asan-runtime")
    drain = max(
        seconds(runtime["ASAN_SHUTDOWN_GRACE_SECONDS"]), seconds(runtime["ASAN_EVENT_STOP_TIMEOUT_SECONDS"])
    )
    for workload in of_kind(manifests, "Deployment"):
        spec = pod_spec(workload)
        pause = max(
            (
                c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                for c in spec["containers"]
            ),
            default=0,
        )
        assert spec["terminationGracePeriodSeconds"] > pause + drain, workload["metadata"]["name"]


# Files a worker reads (services/<name>/worker.py), beyond what its server reads: visa's worker
# signs the e-visas it approves automatically, so it needs the server's signing key.
WORKER_FILES = {"visa": ("VISA_SIGNING_KEY_FILE",)}


def settings(manifests: list[Manifest], container: dict[str, Any]) -> dict[str, str]:
    """The variables a container gets from its ConfigMaps and its own literal values."""
    found: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if reference := source.get("configMapRef"):
            found.update(named(manifests, "ConfigMap", reference["name"]).get("data", {}))
    found.update({v["name"]: v["value"] for v in container.get("env", []) if "value" in v})
    return found


def secret_mounted_at(workload: Manifest, container: dict[str, Any], path: str) -> str | None:
    """The Secret whose volume holds `path` in the container, or None."""
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            secret: str | None = volumes[mount["name"]].get("secret", {}).get("secretName")
            return secret
    return None


@pytest.mark.parametrize("service", deployed_services())
def test_the_files_a_service_reads_are_mounted_from_secrets(overlay: str, service: str) -> None:
    """A *_FILE setting that points at no mount sends the process elsewhere: tokens it cannot
    verify, or visa making a signing key of its own in /tmp that no border post knows."""
    manifests = rendered(overlay)
    server_deployment = named(manifests, "Deployment", service)
    server = next(c for c in pod_spec(server_deployment)["containers"] if c["name"] == "server")
    server_files = {k: v for k, v in settings(manifests, server).items() if k.endswith("_FILE")}
    for name, path in server_files.items():
        assert secret_mounted_at(server_deployment, server, path), f"{service}: {name}={path} is not mounted"
    worker_deployment = named(manifests, "Deployment", f"{service}-worker")
    worker = pod_spec(worker_deployment)["containers"][0]
    for name in WORKER_FILES.get(service, ()):
        path = settings(manifests, worker)[name]
        assert secret_mounted_at(worker_deployment, worker, path) == secret_mounted_at(
            server_deployment, server, server_files[name]
        ), f"{service}-worker: {name} must be the server's Secret"


def test_the_relay_s_url_goes_to_the_workers_that_mail_and_to_no_other_container(overlay: str) -> None:
    """The URL may carry the relay's credentials: only the processes that send mail hold it."""
    manifests = rendered(overlay)
    given = {
        workload["metadata"]["name"]
        for workload in of_kind(manifests, *WORKLOADS)
        for container in containers(workload)
        if "ASAN_SMTP_URL"
        in {v["name"] for v in container.get("env", [])} | set(settings(manifests, container))
    }
    assert given == {f"{service}-worker" for service in mailing_services()}
    assert mailing_services(), "visa mails its applicants: services/visa/worker.py"


@pytest.mark.parametrize("service", mailing_services())
def test_a_worker_that_mails_takes_the_relay_from_its_secret_and_sends_as_asan(
    overlay: str, service: str
) -> None:
    """Without ASAN_SMTP_URL the mailer would try the local mail drop (smtp://127.0.0.1:8025)
    and give every mail up after its attempts; without ASAN_PUBLIC_GATEWAY_URL the mails'
    links would lead to 127.0.0.1."""
    from email.utils import parseaddr

    manifests = rendered(overlay)
    worker = pod_spec(named(manifests, "Deployment", f"{service}-worker"))["containers"][0]
    reference = {v["name"]: v for v in worker["env"]}["ASAN_SMTP_URL"]["valueFrom"]["secretKeyRef"]
    assert re.fullmatch(rf"{service}-smtp(-[a-z0-9]{{10}})?", reference["name"]), reference
    assert reference["key"] == "url"
    found = settings(manifests, worker)
    assert parseaddr(found["ASAN_MAIL_FROM"])[1] == "no-reply@asan.gov.az"
    assert found["ASAN_PUBLIC_GATEWAY_URL"] == config_map(manifests, "asan-mail")["ASAN_PUBLIC_GATEWAY_URL"]


def test_mails_link_to_the_gateway_at_its_public_address(overlay: str) -> None:
    from urllib.parse import urlsplit

    manifests = rendered(overlay)
    address = urlsplit(config_map(manifests, "asan-mail")["ASAN_PUBLIC_GATEWAY_URL"])
    ingress = named(manifests, "Ingress", "gateway")
    assert address.hostname in [rule["host"] for rule in ingress["spec"]["rules"]]
    with_tls = {host for tls in ingress["spec"].get("tls", []) for host in tls["hosts"]}
    assert address.scheme == ("https" if address.hostname in with_tls else "http")
    assert address.path in ("", "/") and address.port is None


def test_secrets_come_from_secrets_and_only_by_reference(overlay: str) -> None:
    manifests = rendered(overlay)
    for workload in of_kind(manifests, *WORKLOADS):
        for container in containers(workload):
            for variable in container.get("env", []):
                if re.search(r"DATABASE_URL|AMQP_URI|SMTP_URL|PASSWORD|SECRET|KEY", variable["name"]):
                    assert "secretKeyRef" in variable.get("valueFrom", {}), variable["name"]
    for data in (m.get("data", {}) for m in of_kind(manifests, "ConfigMap")):
        for key, value in data.items():
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"credentials in ConfigMap key {key}"


def test_autoscalers_and_disruption_budgets_point_at_existing_servers(overlay: str) -> None:
    manifests = rendered(overlay)
    deployments = {d["metadata"]["name"]: d for d in of_kind(manifests, "Deployment")}
    for autoscaler in of_kind(manifests, "HorizontalPodAutoscaler"):
        target = autoscaler["spec"]["scaleTargetRef"]["name"]
        assert target in deployments
        assert "replicas" not in deployments[target]["spec"], f"{target}: the autoscaler owns replicas"
    for budget in of_kind(manifests, "PodDisruptionBudget"):
        matched = [
            d
            for d in deployments.values()
            if selects(budget["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert matched, budget["metadata"]["name"]
    assert {a["spec"]["scaleTargetRef"]["name"] for a in of_kind(manifests, "HorizontalPodAutoscaler")} == {
        *deployed_services(),
        "gateway",
    }


def test_every_workload_carries_the_recommended_labels(overlay: str) -> None:
    for workload in of_kind(rendered(overlay), *WORKLOADS):
        for labels in (workload["metadata"]["labels"], workload["spec"]["template"]["metadata"]["labels"]):
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"):
                assert key in labels, f"{workload['metadata']['name']}: {key}"


# --- the gateway --------------------------------------------------------------------------------


def test_the_gateway_is_deployed_behind_an_ingress(overlay: str) -> None:
    manifests = rendered(overlay)
    deployment = named(manifests, "Deployment", "gateway")
    container = pod_spec(deployment)["containers"][0]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9190, "protocol": "TCP"},
    ]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for name in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceMonitor"):
        named(manifests, name, "gateway")
    ingress = named(manifests, "Ingress", "gateway")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "gateway", "port": {"name": "http"}}
    gateway_config = config_map(manifests, "gateway")
    for service in deployed_services():
        assert (
            gateway_config[f"GATEWAY_BACKEND_{service.upper()}"]
            == f"{service}:{definition(service).grpc_port}"
        )


# --- monitoring ---------------------------------------------------------------------------------


def test_every_metrics_port_is_scraped(overlay: str) -> None:
    manifests = rendered(overlay)
    services = of_kind(manifests, "Service")
    for workload in of_kind(manifests, "Deployment", "StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        for container in pod_spec(workload)["containers"]:
            for port in container.get("ports", []):
                if port["name"] != "metrics":
                    continue
                by_pod = any(
                    selects(monitor["spec"]["selector"], labels)
                    and port["name"] in {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
                    for monitor in of_kind(manifests, "PodMonitor")
                )
                service_ports = {
                    p["name"]
                    for s in services
                    if selects(s["spec"].get("selector"), labels)
                    for p in s["spec"]["ports"]
                    if p.get("targetPort") in {port["name"], port["containerPort"]}
                }
                by_service = any(
                    service_ports & {e["port"] for e in monitor["spec"]["endpoints"]}
                    and any(
                        selects(monitor["spec"]["selector"], s["metadata"]["labels"])
                        for s in services
                        if selects(s["spec"].get("selector"), labels)
                    )
                    for monitor in of_kind(manifests, "ServiceMonitor")
                )
                assert by_pod or by_service, (
                    f"{workload['metadata']['name']}: port {port['name']} is not scraped"
                )


def test_the_suite_s_monitors_label_series_with_service_and_component(overlay: str) -> None:
    manifests = rendered(overlay)
    suite = {*deployed_services(), "gateway"}
    for monitor in of_kind(manifests, "ServiceMonitor", "PodMonitor"):
        if monitor["metadata"]["labels"].get("app.kubernetes.io/name") not in suite:
            continue
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        for endpoint in endpoints:
            targets = {r.get("targetLabel") for r in endpoint.get("relabelings", [])}
            assert {"asan_service", "asan_component"} <= targets, monitor["metadata"]["name"]


def test_dashboards_are_config_maps_for_the_grafana_sidecar(overlay: str) -> None:
    boards = [
        m
        for m in of_kind(rendered(overlay), "ConfigMap")
        if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    files = sorted(p.name for p in (K8S / "base" / "monitoring" / "dashboards").glob("*.json"))
    assert sorted(key for board in boards for key in board["data"]) == files


# --- the overlays -------------------------------------------------------------------------------


def test_dev_runs_one_replica_with_its_own_databases_and_broker() -> None:
    manifests = rendered("dev")
    for autoscaler in of_kind(manifests, "HorizontalPodAutoscaler"):
        assert autoscaler["spec"]["minReplicas"] == autoscaler["spec"]["maxReplicas"] == 1
    stateful = {s["metadata"]["name"]: s for s in of_kind(manifests, "StatefulSet")}
    for name in [f"{service}-postgresql" for service in deployed_services()] + ["rabbitmq"]:
        assert name in stateful, f"dev needs the StatefulSet {name}"
        assert stateful[name]["spec"]["volumeClaimTemplates"], f"{name} keeps its data in a volume"
        assert stateful[name]["spec"]["replicas"] == 1
    for service in deployed_services():
        database = named(manifests, "StatefulSet", f"{service}-postgresql")
        assert database["spec"]["template"]["metadata"]["labels"]["asan.gov.az/database-of"] == service


def test_dev_runs_the_images_that_make_images_builds() -> None:
    for workload in of_kind(rendered("dev"), *WORKLOADS):
        for container in containers(workload):
            image = container["image"]
            if image.startswith("asan/"):
                assert image.endswith(":dev"), f"{image}: overlays/dev's `images` needs the service"


def test_dev_secrets_hold_no_password() -> None:
    import base64

    for secret in of_kind(rendered("dev"), "Secret"):
        for key, value in secret.get("data", {}).items():
            text = base64.b64decode(value).decode()
            credentials = re.search(r"://([^/@\s]*)@", text)
            userinfo = credentials.group(1) if credentials else ""
            # guest:guest is RabbitMQ's public default, admitted off loopback in the dev broker only.
            assert ":" not in userinfo or userinfo == "guest:guest", (
                f"{secret['metadata']['name']}.{key} carries a password"
            )


def test_prod_runs_several_replicas_and_commits_no_secret() -> None:
    manifests = rendered("prod")
    for autoscaler in of_kind(manifests, "HorizontalPodAutoscaler"):
        assert autoscaler["spec"]["minReplicas"] >= 3, autoscaler["metadata"]["name"]
    assert not of_kind(manifests, "Secret"), "production Secrets come from the operators, not from git"
    assert not of_kind(manifests, "StatefulSet"), "production databases and broker are the operators'"
    for workload in of_kind(manifests, "Deployment"):
        for container in containers(workload):
            image = container["image"]
            assert not image.endswith((":dev", ":latest")) and ":" in image, image
            requests, limits = container["resources"]["requests"], container["resources"]["limits"]
            assert memory(requests["memory"]) == memory(limits["memory"]), (
                f"{workload['metadata']['name']}/{container['name']}: memory guaranteed in production"
            )


def test_prod_spreads_each_server_s_own_pods_over_zones_and_nodes() -> None:
    """The spread is one patch for every server; each pod's own labels (matchLabelKeys) make
    it count its own service's pods, and no other's."""
    manifests = rendered("prod")
    deployments = of_kind(manifests, "Deployment")
    for name in [*deployed_services(), "gateway"]:
        deployment = named(manifests, "Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        constraints = {c["topologyKey"]: c for c in pod_spec(deployment)["topologySpreadConstraints"]}
        assert constraints["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
        for constraint in constraints.values():
            keys = constraint.get("matchLabelKeys", [])
            assert "pod-template-hash" in keys, "a rollout's new pods are spread among themselves"
            selector = {
                "matchLabels": {
                    **constraint["labelSelector"].get("matchLabels", {}),
                    **{key: labels[key] for key in keys if key in labels},
                }
            }
            counted = [
                d["metadata"]["name"]
                for d in deployments
                if selects(selector, d["spec"]["template"]["metadata"]["labels"])
            ]
            assert counted == [name], f"{name} spreads among the pods of {counted}"


def test_prod_decides_no_visa_without_an_officer() -> None:
    for config in of_kind(rendered("prod"), "ConfigMap"):
        assert config.get("data", {}).get("VISA_SANDBOX_DECISIONS", "false") == "false", (
            "sandbox passports (SBXA...) would be approved in production"
        )


def test_prod_secrets_are_documented() -> None:
    manifests = rendered("prod")
    referenced: set[str] = set()
    for workload in of_kind(manifests, *WORKLOADS):
        for container in containers(workload):
            for variable in container.get("env", []):
                if ref := variable.get("valueFrom", {}).get("secretKeyRef"):
                    referenced.add(f"{ref['name']}/{ref['key']}")
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                # Without items, every key of the Secret is a file (keys that rotate): "*".
                for item in volume["secret"].get("items", [{"key": "*"}]):
                    referenced.add(f"{volume['secret']['secretName']}/{item['key']}")
    for ingress in of_kind(manifests, "Ingress"):
        referenced.update(f"{tls['secretName']}/tls.crt" for tls in ingress["spec"].get("tls", []))
    readme = (K8S / "README.md").read_text()
    for reference in sorted(referenced):
        name, key = reference.split("/")
        assert re.search(rf"`{re.escape(name)}`.*`{re.escape(key)}`", readme), (
            f"Secret {name} (key {key}) is not in deploy/k8s/README.md's Secrets table"
        )
