"""The rules and alerts, checked by promtool and read for what on-call needs: every alert
unit-tested firing and quiet, with a severity, a `for`, words and a runbook section."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import suite
from tests.deploy.generators import prometheus_config_generator
from tests.deploy.support import (
    DASHBOARDS,
    K8S,
    PROMETHEUS_CONFIG,
    RULE_TESTS,
    RULES,
    RUNBOOK,
    alerts,
    dashboard_queries,
    dashboards,
    load_yaml,
    metric_names,
    rule_groups,
    rules,
    run,
    tool,
)


def test_promtool_accepts_the_rules() -> None:
    result = run(tool("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tests", RULE_TESTS, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(tests: Path) -> None:
    result = run(tool("promtool"), "test", "rules", tests.name, cwd=tests.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def _rule_test_groups() -> list[dict[str, Any]]:
    return [group for path in RULE_TESTS for group in load_yaml(path)["tests"]]


def test_promtool_accepts_the_local_prometheus_configuration() -> None:
    result = run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases: dict[str, set[bool]] = defaultdict(set)
    for test in _rule_test_groups():
        for case in test.get("alert_rule_test", []):
            cases[case["alertname"]].add(bool(case.get("exp_alerts")))
    for alert in alerts():
        assert cases[alert["alert"]] == {True, False}, (
            f"{alert['alert']}: promtool tests need a case where it fires and one where it stays quiet"
        )


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lowercase, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", h.lower())) for h in headings}


def test_every_alert_tells_on_call_what_and_where_to_look() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for alert in alerts():
        name = alert["alert"]
        assert re.fullmatch(r"Asan[A-Z]\w+", name), name
        assert "for" in alert, f"{name}: no `for`"
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = alert["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        url = annotations["runbook_url"]
        assert url.startswith("deploy/k8s/RUNBOOK.md#"), url
        assert url.split("#", 1)[1] in anchors, f"{name}: RUNBOOK.md has no section #{url.split('#', 1)[1]}"


def test_recording_rules_are_named_level_metric_operations() -> None:
    for rule in rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_every_recording_rule_is_used() -> None:
    used: set[str] = set()
    for rule in rules():
        used |= metric_names(rule["expr"])
    for board in dashboards().values():
        for query in dashboard_queries(board):
            used |= metric_names(query)
    unused = {rule["record"] for rule in rules() if "record" in rule} - used
    assert not unused, f"recording rules no alert or dashboard reads: {sorted(unused)}"


def test_server_errors_are_the_thanos_codes_in_the_interceptor_s_spelling() -> None:
    from services.runtime.interceptors import GO_CODE_NAMES

    server_errors = {"Unknown", "Internal", "Unavailable", "DataLoss", "ResourceExhausted"}
    assert server_errors <= set(GO_CODE_NAMES.values()), "the grpc_code values the interceptor writes"
    text = RULES.read_text()
    for selector in re.findall(r'grpc_code=~"([^"]+)"', text):
        assert set(selector.split("|")) == server_errors, selector


def test_the_prometheus_rule_carries_the_rule_file() -> None:
    documents = [
        d for d in yaml.safe_load_all((K8S / "base" / "monitoring" / "prometheusrule.yaml").read_text()) if d
    ]
    assert len(documents) == 1 and documents[0]["kind"] == "PrometheusRule"
    assert documents[0]["spec"] == {"groups": rule_groups()}, (
        "deploy/k8s/base/monitoring/prometheusrule.yaml is stale: run `make prometheusrule`"
    )


def test_the_local_prometheus_scrapes_the_suite_of_make_run_with_the_rules() -> None:
    config: dict[str, Any] = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["rules/*.yml"]
    targets = {
        static["labels"]["asan_service"]: static["targets"]
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        if "labels" in static
    }
    for definition in suite.definitions():
        assert targets.get(definition.name) == [f"127.0.0.1:{definition.metrics_port}"], (
            f"deploy/prometheus/prometheus.yml needs a job scraping 127.0.0.1:{definition.metrics_port}"
        )
    assert targets["gateway"] == [f"127.0.0.1:{suite.GATEWAY_METRICS_PORT}"]
    assert targets["events"] == [f"127.0.0.1:{suite.LOCAL_EVENTS_METRICS_PORT}"]
    components = {
        static["labels"]["asan_service"]: static["labels"]["asan_component"]
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        if "labels" in static
    }
    assert components == {
        **{name: "server" for name in suite.service_names()},
        "gateway": "gateway",
        "events": "worker",
    }


def test_the_local_prometheus_configuration_is_what_make_prometheus_config_writes() -> None:
    assert PROMETHEUS_CONFIG.read_text() == prometheus_config_generator().render(), (
        "deploy/prometheus/prometheus.yml is stale: run `make prometheus-config`"
    )


# --- written once for every service ---------------------------------------------------------


def _own_group_service(group: dict[str, Any]) -> str | None:
    """`payment` for the groups asan-payment.rules and asan-payment.alerts, else None."""
    match = re.fullmatch(r"asan-(\w+)\.(?:rules|alerts)", group["name"])
    return match.group(1) if match and match.group(1) in suite.service_names() else None


def test_rules_that_are_not_a_service_s_own_select_no_service() -> None:
    for group in rule_groups():
        if _own_group_service(group) is not None:
            continue
        for rule in group["rules"]:
            for value in re.findall(r'=~?\s*"([^"]*)"', rule["expr"]):
                named = set(re.findall(r"\w+", value)) & set(suite.service_names())
                assert not named, (
                    f"{rule.get('record') or rule.get('alert')} selects {sorted(named)}: "
                    f"a rule for one service belongs in its group asan-<service>.rules"
                )


def test_a_service_s_own_groups_are_named_for_a_service_of_the_suite() -> None:
    generic = {"asan-slo", "asan-grpc", "asan-events", "asan-kubernetes"}
    for group in rule_groups():
        base = group["name"].rsplit(".", 1)[0]
        assert base in generic or _own_group_service(group) is not None, (
            f"{group['name']}: neither a group for every service nor asan-<service>.rules/.alerts"
        )


def test_alerts_for_every_service_are_shown_firing_for_one_the_suite_has_not() -> None:
    generic = {
        alert["alert"]
        for group in rule_groups()
        if _own_group_service(group) is None
        for alert in group["rules"]
        if "alert" in alert
    }
    known = {*suite.service_names(), "gateway"}
    fired_for: dict[str, set[str]] = defaultdict(set)
    for test in _rule_test_groups():
        for case in test.get("alert_rule_test", []):
            for expected in case.get("exp_alerts") or []:
                fired_for[case["alertname"]].add(expected["exp_labels"].get("asan_service", ""))
    for alert in sorted(generic):
        if fired_for[alert] == {""}:
            continue  # not per service (AsanPodRestarting: kube-state-metrics' pods)
        assert fired_for[alert] - known - {""}, (
            f"{alert}: no promtool test shows it firing for a service outside the suite ({sorted(known)})"
        )


def test_dashboards_have_a_datasource_and_a_service_variable() -> None:
    uids = set()
    for name, board in dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert (
            variables["datasource"]["type"] == "datasource"
            and variables["datasource"]["query"] == "prometheus"
        )
        assert "service" in variables, name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "${datasource}", f"{name}: {panel['title']}"
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", f"{name}: {panel['title']}"
        assert board["uid"] not in uids
        uids.add(board["uid"])
    assert {"asan-suite-overview", *(f"asan-{s}" for s in suite.service_names())} <= uids, (
        f"a dashboard per service in {DASHBOARDS}"
    )
