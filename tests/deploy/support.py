"""What the deploy tests share: the repository's layout, the real tools (skipped with the
reason where missing), rendered manifests, PromQL metric names, and a small model of
Kubernetes NetworkPolicy semantics to check who may reach whom."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
RULES = DEPLOY / "prometheus" / "rules" / "asan.rules.yml"
# promtool unit tests, one file per evaluation step (deploy/prometheus/tests/*.test.yml).
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.test.yml"))
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARDS = K8S / "base" / "monitoring" / "dashboards"
RUNBOOK = K8S / "RUNBOOK.md"
KUBERNETES_VERSION = "1.32.0"

Manifest = dict[str, Any]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INSTALL_HINTS = {
    "kubectl": "on Debian `apt-get install kubectl` (.ci/run does it)",
    "promtool": "on Debian `apt-get install prometheus` (.ci/run does it)",
    "kubernetes-validate": "`pip install -e '.[dev]'` (make install does it)",
}


def service_names() -> list[str]:
    """The suite's services: every services/<name>/ with a service.py."""
    return sorted(
        p.parent.name for p in (ROOT / "services").glob("*/service.py") if p.parent.name != "runtime"
    )


def deployed_services() -> list[str]:
    """The services that have their folder in deploy/k8s/base (all of them, once
    test_every_service_is_deployed passes); the detailed checks run on these."""
    return [name for name in service_names() if (K8S / "base" / name / "kustomization.yaml").exists()]


def mailing_services() -> list[str]:
    """The deployed services whose event worker mails notices to e-mail addresses (its
    services/<name>/worker.py runs the runtime's notice_mailer_service): their workers, and
    no other pod, need the SMTP relay (deploy/k8s/components/notice-mail)."""
    return [
        name
        for name in deployed_services()
        if (worker := ROOT / "services" / name / "worker.py").exists()
        and re.search(r"\bnotice_mailer_service\(", worker.read_text())
    ]


def tool(name: str) -> str:
    """The path of a command-line tool, or a skip saying how to get it."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed: {_INSTALL_HINTS.get(name, 'install it')}")
    return found


def run(*command: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout)


@cache
def _render(overlay: str, kubectl: str) -> str:
    result = run(kubectl, "kustomize", str(K8S / "overlays" / overlay))
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return result.stdout


def rendered_text(overlay: str) -> str:
    return _render(overlay, tool("kubectl"))


@cache
def _parsed(text: str) -> tuple[Manifest, ...]:
    return tuple(doc for doc in yaml.load_all(text, Loader=_Loader) if doc)


def rendered(overlay: str) -> list[Manifest]:
    """The overlay's objects, parsed once per test session: read them, do not change them."""
    return list(_parsed(rendered_text(overlay)))


def of_kind(manifests: Iterable[Manifest], *kinds: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in kinds]


def named(manifests: Iterable[Manifest], kind: str, name: str) -> Manifest:
    for manifest in manifests:
        if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
            return manifest
    raise AssertionError(f"no {kind} {name!r} in the rendered manifests")


def config_map(manifests: Iterable[Manifest], prefix: str) -> dict[str, str]:
    """The data of the generated ConfigMap `prefix-<hash>` (or `prefix`)."""
    for manifest in of_kind(manifests, "ConfigMap"):
        name = manifest["metadata"]["name"]
        if name == prefix or re.fullmatch(rf"{re.escape(prefix)}-[a-z0-9]{{10}}", name):
            data: dict[str, str] = manifest.get("data", {})
            return data
    raise AssertionError(f"no ConfigMap {prefix!r}")


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Loader)


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = load_yaml(RULES)["groups"]
    return groups


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def dashboard_queries(board: Mapping[str, Any]) -> Iterator[str]:
    """Every PromQL expression of a dashboard: panel targets and variable queries."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text)
            yield inner.group(1) if inner else text


# --- PromQL ----------------------------------------------------------------------------------

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana query) reads."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\$\{?\w+\}?", "1m", text)  # Grafana variables: $__rate_interval, ${x}
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub("", text)
    return {name for name in _NAME.findall(text) if name not in _KEYWORDS}


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics page can carry, including families with no sample yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.update({f"{family.name}_total", f"{family.name}_created"})
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count", "_created"))
        elif family.type == "summary":
            names.update(f"{family.name}{suffix}" for suffix in ("_sum", "_count", "_created"))
    return names


# --- Dockerfiles and .dockerignore -----------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(path: Path) -> list[Stage]:
    """The stages of a Dockerfile: base image (ARGs before the first FROM resolved), name and
    instructions (continuation lines joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out (Docker's rules: last matching line wins,
    a path is out when it or a parent folder is)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in patterns:
        negated = line.startswith("!")
        pattern = line.removeprefix("!")
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            excluded = not negated
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


# --- NetworkPolicy semantics -----------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """A pod as the policies see it: where it runs and its labels."""

    namespace: str
    labels: Mapping[str, str]
    name: str = "pod"


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # the pods modelled here are in the cluster
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        namespace_ok = pod.namespace == policy_namespace
    else:
        namespace_ok = selects(namespace_selector, {"kubernetes.io/metadata.name": pod.namespace})
    return namespace_ok and selects(peer.get("podSelector"), pod.labels)


def _port_matches(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        first = entry["port"]
        assert isinstance(first, int), f"named port {first!r}: use numbers in policies"
        if first <= port <= entry.get("endPort", first):
            return True
    return False


def _side_allows(
    policies: list[Manifest], pod: Pod, peer: Pod, port: int, protocol: str, direction: str
) -> bool:
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    applicable = [
        policy
        for policy in policies
        if policy["metadata"]["namespace"] == pod.namespace
        and selects(policy["spec"]["podSelector"], pod.labels)
        and direction in policy["spec"].get("policyTypes", ["Ingress"])
    ]
    if not applicable:
        return True
    for policy in applicable:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            peer_ok = not peers or any(_peer_matches(p, policy["metadata"]["namespace"], peer) for p in peers)
            if peer_ok and _port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def reachable(policies: list[Manifest], source: Pod, target: Pod, port: int, protocol: str = "TCP") -> bool:
    """Whether `source` may open a connection to `target` on `port`: the egress policies of
    the source and the ingress policies of the target must both allow it."""
    return _side_allows(policies, source, target, port, protocol, "Egress") and _side_allows(
        policies, target, source, port, protocol, "Ingress"
    )


def workload_pods(manifests: Iterable[Manifest]) -> dict[str, Pod]:
    """The pods of every Deployment and StatefulSet, by workload name."""
    return {
        m["metadata"]["name"]: Pod(
            m["metadata"]["namespace"], m["spec"]["template"]["metadata"]["labels"], m["metadata"]["name"]
        )
        for m in of_kind(manifests, "Deployment", "StatefulSet")
    }


# --- Build arguments (services/Dockerfile builds every service's image) ----------------------

# The instructions in which the builder itself replaces $NAME and ${NAME} (Docker's reference,
# "Environment replacement"); RUN, CMD and ENTRYPOINT are left to a shell, if any.
_SUBSTITUTED = {"ADD", "COPY", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with $NAME and ${NAME} replaced where `values` knows NAME; others are left."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def built_with(stages: list[Stage], build_args: Mapping[str, str]) -> list[Stage]:
    """The stages as a build given these --build-arg values sees them: each stage's ARGs (with
    their defaults) and ENVs replaced in the instructions that the builder substitutes."""
    import shlex

    built: list[Stage] = []
    for stage in stages:
        values: dict[str, str] = {}
        instructions: list[tuple[str, str]] = []
        for keyword, written in stage.instructions:
            argument = substitute(written, values) if keyword in _SUBSTITUTED else written
            if keyword == "ARG":
                name, _, default = argument.partition("=")
                if name.strip() in build_args or default:
                    values[name.strip()] = build_args.get(name.strip(), default.strip())
            elif keyword == "ENV":
                for pair in shlex.split(argument):
                    key, _, value = pair.partition("=")
                    values[key] = value
            instructions.append((keyword, argument))
        built.append(Stage(stage.base, stage.name, instructions))
    return built


def environment(stage: Stage) -> dict[str, str]:
    """The variables a stage's ENV instructions set (as written: substitute them first)."""
    import shlex

    found: dict[str, str] = {}
    for keyword, argument in stage.instructions:
        if keyword == "ENV":
            for pair in shlex.split(argument):
                key, _, value = pair.partition("=")
                found[key] = value
    return found
