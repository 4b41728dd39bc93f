"""The dashboards are generated (`make dashboards`): one per service in services/suite.py from
one template plus the service's own panels, and the suite overview with a panel per service.
What is checked in is what the generator writes now."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from services import suite
from tests.deploy.generators import DASHBOARDS_GENERATOR, dashboards_generator
from tests.deploy.support import DASHBOARDS, dashboard_queries, dashboards, load_yaml

MONITORING = DASHBOARDS.parent
TEMPLATE = DASHBOARDS_GENERATOR.parent / "service.yaml"
SERVER_ERRORS = {"Unknown", "Internal", "Unavailable", "DataLoss", "ResourceExhausted"}


def by_uid() -> dict[str, dict[str, Any]]:
    return {board["uid"]: board for board in dashboards().values()}


def titled(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {panel["title"]: panel for panel in board["panels"]}


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in board["templating"]["list"]}


def generated_files(root: Path) -> dict[str, str]:
    paths = [*sorted((root / "dashboards").glob("*.json")), root / "kustomization.yaml"]
    return {str(path.relative_to(root)): path.read_text() for path in paths if path.exists()}


def test_the_checked_in_dashboards_are_what_make_dashboards_writes(tmp_path: Path) -> None:
    assert dashboards_generator().main(["--out", str(tmp_path)]) == 0
    written, checked_in = generated_files(tmp_path), generated_files(MONITORING)
    assert sorted(checked_in) == sorted(written), "dashboards added or gone: run `make dashboards`"
    for name, text in written.items():
        assert checked_in[name] == text, f"deploy/k8s/base/monitoring/{name} is stale: run `make dashboards`"


def test_every_service_of_the_suite_has_its_dashboard_linked_from_the_overview() -> None:
    boards = by_uid()
    overview_links = {
        link["url"].split("?")[0]
        for panel in boards["asan-suite-overview"]["panels"]
        for link in panel.get("links", [])
    }
    for definition in suite.definitions():
        uid = f"asan-{definition.name}"
        assert uid in boards, f"no dashboard {uid} in {DASHBOARDS}: run `make dashboards`"
        board = boards[uid]
        assert variables(board)["service"]["query"] == definition.name
        assert f'asan_service="{definition.name}"' in variables(board)["namespace"]["query"]["query"]
        assert board["tags"] == ["asan", definition.name]
        assert f"/d/{uid}" in overview_links, f"the overview has no panel leading to {uid}"


def test_every_service_dashboard_shows_the_template_s_panels_with_the_same_queries() -> None:
    template = load_yaml(TEMPLATE)
    boards = by_uid()
    for definition in suite.definitions():
        panels = titled(boards[f"asan-{definition.name}"])
        for row in template["rows"]:
            assert panels[row["title"]]["type"] == "row"
            for spec in row["panels"]:
                if spec.get("when") == "worker" and not suite.has_worker(definition.name):
                    assert spec["title"] not in panels, f"{definition.name} has no worker: {spec['title']}"
                    continue
                exprs = [target["expr"] for target in panels[spec["title"]]["targets"]]
                assert exprs == [query["expr"] for query in spec["queries"]], (definition.name, spec["title"])


def test_a_service_without_panels_of_its_own_gets_the_generic_dashboard() -> None:
    generator = dashboards_generator()
    template = load_yaml(TEMPLATE)
    board = generator.service_dashboard(generator.Service("example", has_worker=True), template)
    assert (board["uid"], board["title"], board["tags"]) == (
        "asan-example",
        "ASAN example",
        ["asan", "example"],
    )
    assert [p["title"] for p in board["panels"] if p["type"] == "row"] == ["API", "Events", "Processes"]
    assert variables(board)["service"]["query"] == "example"
    for query in dashboard_queries(board):
        assert re.search(r'(asan_service|source_service)=~?"(\$service|example)"', query), query
    without_worker = generator.service_dashboard(generator.Service("example", has_worker=False), template)
    worker_panels = set(titled(board)) - set(titled(without_worker))
    assert worker_panels == {"Events relayed per second", "Events consumed, by outcome", "Event lag p99"}


def test_a_service_s_notes_replace_the_template_s_descriptions() -> None:
    generator = dashboards_generator()
    template = load_yaml(TEMPLATE)
    own = {
        "title": "ASAN Example (example)",
        "rows": [],
        "notes": {"Outbox backlog": "ExampleCreated waiting."},
    }
    board = generator.service_dashboard(generator.Service("example", True, own), template)
    assert board["title"] == "ASAN Example (example)"
    assert titled(board)["Outbox backlog"]["description"] == "ExampleCreated waiting."


def test_a_note_on_a_panel_the_template_has_not_is_refused() -> None:
    generator = dashboards_generator()
    own = {"title": "ASAN Example (example)", "rows": [], "notes": {"Latency p42": "?"}}
    with pytest.raises(
        generator.DefinitionError,
        match=re.escape("panels/example.yaml: notes on panels the template has not: ['Latency p42']"),
    ):
        generator.service_dashboard(generator.Service("example", True, own), load_yaml(TEMPLATE))


def test_a_misspelt_panel_setting_is_refused_rather_than_ignored() -> None:
    generator = dashboards_generator()
    examples = {"title": "Examples", "description": "Made up.", "queries": [{"expr": "up", "legend": "up"}]}
    own = {
        "title": "ASAN Example (example)",
        "rows": [{"title": "Examples", "panels": [{**examples, "treshold": 3}]}],
    }
    with pytest.raises(
        generator.DefinitionError,
        match=re.escape("panels/example.yaml: panel 'Examples': unknown keys ['treshold']"),
    ):
        generator.service_dashboard(generator.Service("example", True, own), load_yaml(TEMPLATE))


def test_panels_for_a_service_the_suite_has_not_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = dashboards_generator()
    assert "example" not in suite.service_names()
    (tmp_path / "example.yaml").write_text("title: ASAN Example (example)\nrows: []\n")
    monkeypatch.setattr(generator, "PANELS", tmp_path)
    with pytest.raises(generator.DefinitionError, match="panels of services the suite has not: example"):
        generator.services_of_the_suite()


def test_server_errors_on_the_dashboards_are_the_thanos_codes() -> None:
    for name, board in dashboards().items():
        selectors = [s for q in dashboard_queries(board) for s in re.findall(r'grpc_code=~"([^"]+)"', q)]
        for selector in selectors:
            assert set(selector.split("|")) == SERVER_ERRORS, f"{name}: {selector}"
        if name != "asan-suite-overview.json":
            assert selectors, f"{name}: no server-error ratio per method"


def test_latency_panels_show_exemplars_that_open_the_trace_data_source() -> None:
    for board in dashboards().values():
        assert variables(board)["traces"]["type"] == "datasource", board["uid"]
        targets = [target for panel in board["panels"] for target in panel.get("targets", [])]
        histograms = [t for t in targets if "_bucket" in t["expr"] and not t.get("instant")]
        assert histograms, board["uid"]
        assert all(target.get("exemplar") is True for target in histograms), board["uid"]
