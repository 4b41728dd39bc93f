"""Writes the suite's Grafana dashboards from one template and each service's own panels.

    python deploy/dashboards/generate.py             (make dashboards)
    python deploy/dashboards/generate.py --out DIR   (the same files under DIR; tests compare)

Inputs, in this folder:
- service.yaml: what every service's dashboard shows below its own panels (its gRPC API,
  events and processes), the same queries for all, filtered by the dashboard's `$service`;
- panels/<service>.yaml: a service's own panels (payments, visa due times...) and its notes
  on the generic ones; a service without one gets the generic dashboard;
- overview.yaml: the suite overview, with a panel per service where a row says `each_service`.

Outputs, in deploy/k8s/base/monitoring/: dashboards/asan-<service>.json (uid asan-<service>)
for every service in services/suite.py, dashboards/asan-suite-overview.json, and the
kustomization.yaml that makes a ConfigMap of each for Grafana's sidecar. Edit the inputs,
never the outputs: tests/deploy fails when they differ.

Panels, in every input (a key not listed here is an error, so that a typo is not ignored):
  title, description               required
  queries                          [{expr, legend}]; `unit` and `threshold` on a query apply
                                   to its values only (a stat showing several figures)
  type                             timeseries (default), stat or bargauge
  width, height                    grid units of 24 across, default 12 by 8; panels fill a
                                   row left to right and wrap
  unit                             a Grafana unit, default short
  threshold                        red from this value: a line on a time series
  stacked                          time series stacked (counts by outcome)
  decimals, colour, sparkline,     stat: decimals shown, value or background coloured,
  show_names                       a sparkline under the value, each query's legend shown
  links                            [{title, url}]
  when: worker                     service.yaml only: for services with an event worker
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services import suite

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEMPLATE = HERE / "service.yaml"
OVERVIEW = HERE / "overview.yaml"
PANELS = HERE / "panels"
MONITORING = ROOT / "deploy" / "k8s" / "base" / "monitoring"
OVERVIEW_UID = "asan-suite-overview"

Spec = dict[str, Any]
Json = dict[str, Any]

PANEL_KEYS = {
    "title",
    "description",
    "queries",
    "type",
    "width",
    "height",
    "unit",
    "threshold",
    "stacked",
    "decimals",
    "colour",
    "sparkline",
    "show_names",
    "links",
    "when",
}
QUERY_KEYS = {"expr", "legend", "unit", "threshold"}
SERVICE_PANELS_KEYS = {"title", "description", "variables", "rows", "notes"}
GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


class DefinitionError(ValueError):
    """An input file that does not follow the schema above."""


@dataclass(frozen=True)
class Service:
    """What a service's dashboard is made of: its name, whether it has an event worker, and
    its own panels (panels/<name>.yaml), if any."""

    name: str
    has_worker: bool
    own: Spec | None = None

    @property
    def uid(self) -> str:
        return f"asan-{self.name}"

    @property
    def title(self) -> str:
        return str((self.own or {}).get("title", f"ASAN {self.name}"))


# --- panels ----------------------------------------------------------------------------------


def _checked(spec: Spec, where: str, *, template: bool = False) -> Spec:
    if unknown := set(spec) - (PANEL_KEYS if template else PANEL_KEYS - {"when"}):
        raise DefinitionError(f"{where}: panel {spec.get('title')!r}: unknown keys {sorted(unknown)}")
    if missing := {"title", "description", "queries"} - set(spec):
        raise DefinitionError(f"{where}: panel {spec.get('title')!r}: no {', '.join(sorted(missing))}")
    for query in spec["queries"]:
        if set(query) - QUERY_KEYS or {"expr", "legend"} - set(query):
            raise DefinitionError(f"{where}: panel {spec['title']!r}: a query has {sorted(query)}")
    if spec.get("type", "timeseries") not in {"timeseries", "stat", "bargauge"}:
        raise DefinitionError(f"{where}: panel {spec['title']!r}: type {spec['type']!r}")
    if spec.get("when", "worker") != "worker":
        raise DefinitionError(f"{where}: panel {spec['title']!r}: when {spec['when']!r}, not worker")
    return spec


def _thresholds(threshold: float | None) -> Json:
    steps: list[Json] = [{"color": "green", "value": None}]
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
    return {"mode": "absolute", "steps": steps}


def _reduce_to_last() -> Json:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def _field_config(spec: Spec) -> Json:
    kind = spec.get("type", "timeseries")
    defaults: Json = {"unit": spec.get("unit", "short"), "thresholds": _thresholds(spec.get("threshold"))}
    if kind == "timeseries":
        defaults["min"] = 0
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "stacking": {"mode": "normal" if spec.get("stacked") else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if "threshold" in spec else "off"},
        }
    if "decimals" in spec:
        defaults["decimals"] = spec["decimals"]
    overrides = []
    for ref_id, query in zip(_ref_ids(), spec["queries"], strict=False):
        properties = [{"id": "unit", "value": query["unit"]}] if "unit" in query else []
        if "threshold" in query:
            properties.append({"id": "thresholds", "value": _thresholds(query["threshold"])})
        if properties:
            overrides.append({"matcher": {"id": "byFrameRefID", "options": ref_id}, "properties": properties})
    return {"defaults": defaults, "overrides": overrides}


def _options(spec: Spec) -> Json:
    kind = spec.get("type", "timeseries")
    if kind == "timeseries":
        return {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "stat":
        return {
            "reduceOptions": _reduce_to_last(),
            "colorMode": spec.get("colour", "value"),
            "graphMode": "area" if spec.get("sparkline") else "none",
            "textMode": "value_and_name" if spec.get("show_names") else "auto",
        }
    return {
        "reduceOptions": _reduce_to_last(),
        "displayMode": "basic",
        "orientation": "horizontal",
        "showUnfilled": True,
    }


def _ref_ids() -> Iterable[str]:
    return (chr(ord("A") + i) for i in range(26))


def _targets(spec: Spec) -> list[Json]:
    # A stat or a bar gauge shows one figure per series: ask for that one point only.
    instant = spec.get("type", "timeseries") != "timeseries"
    targets = []
    for ref_id, query in zip(_ref_ids(), spec["queries"], strict=False):
        target: Json = {"datasource": DATASOURCE, "expr": query["expr"], "legendFormat": query["legend"]}
        target["refId"] = ref_id
        if instant:
            target.update({"instant": True, "range": False})
        elif "_bucket" in query["expr"]:
            # A latency histogram: its exemplars (trace ids, services.runtime.tracing) are drawn
            # as points that open the trace in the data source of the `traces` variable.
            target["exemplar"] = True
        targets.append(target)
    return targets


def _panel(spec: Spec, grid: Json) -> Json:
    panel: Json = {
        "id": 0,
        "type": spec.get("type", "timeseries"),
        "title": spec["title"],
        "description": spec["description"],
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": _field_config(spec),
        "options": _options(spec),
    }
    if "links" in spec:
        panel["links"] = [{"title": link["title"], "url": link["url"]} for link in spec["links"]]
    panel["targets"] = _targets(spec)
    return panel


def _laid_out(rows: Iterable[tuple[str, list[Spec]]]) -> list[Json]:
    """Rows one under the other; in each, panels left to right, wrapping at the grid's width."""
    panels: list[Json] = []
    y = 0
    for title, specs in rows:
        panels.append(
            {
                "id": 0,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = line_height = 0
        for spec in specs:
            width, height = spec.get("width", 12), spec.get("height", 8)
            if x + width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel(spec, {"h": height, "w": width, "x": x, "y": y}))
            x += width
            line_height = max(line_height, height)
        y += line_height
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return panels


# --- variables and the dashboard -------------------------------------------------------------


def _query_variable(name: str, label: str, query: str, all_value: str) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,
        "sort": 1,
        "includeAll": True,
        "allValue": all_value,
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "options": [],
        "regex": "",
    }


def _datasource_variable() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "options": [],
        "includeAll": False,
        "multi": False,
    }


def _traces_variable() -> Json:
    """The traces data source (Tempo; a Jaeger one is chosen by changing `query` to "jaeger"),
    where the Prometheus data source's exemplar link (`exemplarTraceIdDestinations`, name
    `trace_id`) leads: README.md, "Traces"."""
    return {
        "name": "traces",
        "label": "Traces",
        "type": "datasource",
        "query": "tempo",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "options": [],
        "includeAll": False,
        "multi": False,
    }


def _fixed_service_variable(name: str) -> Json:
    option = {"selected": True, "text": name, "value": name}
    return {
        "name": "service",
        "label": "Service",
        "type": "custom",
        "query": name,
        "hide": 0,
        "current": option,
        "options": [option],
        "includeAll": False,
        "multi": False,
    }


def _dashboard(uid: str, title: str, description: str, tags: list[str], variables: list[Json]) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [
            {
                "title": "ASAN dashboards",
                "type": "dashboards",
                "tags": ["asan"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": [_datasource_variable(), _traces_variable(), *variables]},
        "panels": [],
    }


def _rows(document: Spec, where: str, *, template: bool = False) -> list[tuple[str, list[Spec]]]:
    return [
        (row["title"], [_checked(p, where, template=template) for p in row["panels"]])
        for row in document["rows"]
    ]


def _as_noted(spec: Spec, notes: Mapping[str, str]) -> Spec:
    """A template panel as a service shows it: the service's note, if any, as its description."""
    noted = {key: value for key, value in spec.items() if key != "when"}
    noted["description"] = notes.get(spec["title"], spec["description"])
    return noted


def service_dashboard(service: Service, template: Spec) -> Json:
    """Its own rows first, then the template's, with the service's notes as descriptions."""
    own = service.own or {}
    where = f"panels/{service.name}.yaml"
    notes: dict[str, str] = own.get("notes", {})
    generic: list[tuple[str, list[Spec]]] = []
    template_titles: set[str] = set()
    for title, specs in _rows(template, TEMPLATE.name, template=True):
        template_titles |= {spec["title"] for spec in specs}
        shown = [spec for spec in specs if spec.get("when") != "worker" or service.has_worker]
        generic.append((title, [_as_noted(spec, notes) for spec in shown]))
    if unknown := set(notes) - template_titles:
        raise DefinitionError(f"{where}: notes on panels the template has not: {sorted(unknown)}")
    variables = [
        _query_variable(
            "namespace", "Namespace", f'label_values(up{{asan_service="{service.name}"}}, namespace)', ".*"
        ),
        _fixed_service_variable(service.name),
        *(
            _query_variable(v["name"], v["label"], f"label_values({v['values_of']}, {v['name']})", ".*")
            for v in own.get("variables", [])
        ),
    ]
    description = own.get(
        "description",
        f"{service.name}: its gRPC API, its events and its processes (no panels of its own yet).",
    )
    board = _dashboard(service.uid, service.title, description, ["asan", service.name], variables)
    board["panels"] = _laid_out([*(_rows(own, where) if own else []), *generic])
    return board


def _each_service_panels(spec: Spec, services: list[Service]) -> list[Spec]:
    """The overview's panel per service: `<service>` and `<dashboard>` (its dashboard's title)
    replaced in every text of the spec."""

    def filled(value: Any, service: Service) -> Any:
        if isinstance(value, str):
            return value.replace("<service>", service.name).replace("<dashboard>", service.title)
        if isinstance(value, list):
            return [filled(item, service) for item in value]
        if isinstance(value, dict):
            return {key: filled(item, service) for key, item in value.items()}
        return value

    return [_checked(filled(spec, service), f"{OVERVIEW.name}: each_service") for service in services]


def overview_dashboard(overview: Spec, services: list[Service]) -> Json:
    rows = []
    for row in overview["rows"]:
        if "each_service" in row:
            rows.append((row["title"], _each_service_panels(row["each_service"], services)))
        else:
            rows.append((row["title"], [_checked(p, OVERVIEW.name) for p in row["panels"]]))
    in_suite = 'up{asan_service!=""}'
    variables = [
        _query_variable("namespace", "Namespace", f"label_values({in_suite}, namespace)", ".*"),
        _query_variable("service", "Service", f"label_values({in_suite}, asan_service)", ".+"),
    ]
    board = _dashboard(OVERVIEW_UID, overview["title"], overview["description"], ["asan"], variables)
    board["panels"] = _laid_out(rows)
    return board


# --- the files ------------------------------------------------------------------------------


KUSTOMIZATION_HEAD = """\
# Generated by `make dashboards` (deploy/dashboards/generate.py): a ConfigMap per dashboard,
# one per service in services/suite.py. Edit the generator's inputs, not this file (a test
# fails when they differ).
#
# What Prometheus and Grafana need beyond the per-service ServiceMonitors and PodMonitors:
# the suite's recording rules and alerts, and the dashboards for Grafana's sidecar (which
# loads every ConfigMap labelled grafana_dashboard: "1"; see ../../README.md, "Monitoring").
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - prometheusrule.yaml
generatorOptions:
  # Nothing refers to these by name, and a hash suffix would leave a stale copy of each
  # dashboard (same uid) behind at every change.
  disableNameSuffixHash: true
  labels:
    grafana_dashboard: "1"
    app.kubernetes.io/name: asan
    app.kubernetes.io/component: monitoring
  annotations:
    grafana_folder: ASAN
configMapGenerator:
"""


def _load(path: Path) -> Spec:
    document: Spec = yaml.safe_load(path.read_text())
    return document


def services_of_the_suite() -> list[Service]:
    """Every service in services/suite.py, with its own panels where it has them."""
    names = suite.service_names()
    orphans = sorted(p.stem for p in PANELS.glob("*.yaml") if p.stem not in names)
    if orphans:
        raise DefinitionError(f"panels of services the suite has not: {', '.join(orphans)}")
    services = []
    for name in names:
        path = PANELS / f"{name}.yaml"
        own = _load(path) if path.exists() else None
        if own is not None and (unknown := set(own) - SERVICE_PANELS_KEYS):
            raise DefinitionError(f"panels/{name}.yaml: unknown keys {sorted(unknown)}")
        services.append(Service(name, suite.has_worker(name), own))
    return services


def rendered() -> dict[str, str]:
    """Every output file's text, by its path under deploy/k8s/base/monitoring/."""
    services = services_of_the_suite()
    boards = [
        overview_dashboard(_load(OVERVIEW), services),
        *(service_dashboard(service, _load(TEMPLATE)) for service in services),
    ]
    files = {
        f"dashboards/{board['uid']}.json": json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        for board in boards
    }
    generator = "".join(
        f"  - name: grafana-dashboard-{board['uid']}\n    files:\n      - dashboards/{board['uid']}.json\n"
        for board in boards
    )
    files["kustomization.yaml"] = KUSTOMIZATION_HEAD + generator
    return files


def write(files: Mapping[str, str], into: Path) -> None:
    """Writes the files, and removes the dashboards of services that are gone."""
    (into / "dashboards").mkdir(parents=True, exist_ok=True)
    for stale in (into / "dashboards").glob("*.json"):
        if f"dashboards/{stale.name}" not in files:
            stale.unlink()
    for relative, text in files.items():
        (into / relative).write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=MONITORING, help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        files = rendered()
    except DefinitionError as error:
        print(f"deploy/dashboards: {error}", file=sys.stderr)
        return 1
    write(files, args.out)
    print(f"wrote {len(files) - 1} dashboards and their kustomization.yaml into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
