"""Writes the Prometheus Operator's PrometheusRule from the rule file Prometheus loads.

    python deploy/prometheus/prometheusrule.py            (make prometheusrule)

deploy/prometheus/rules/asan.rules.yml is the source; the PrometheusRule carries the same
groups inline in its spec, since the operator reads no files. tests/deploy checks that the
two agree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules" / "asan.rules.yml"
TARGET = HERE.parent / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/rules/asan.rules.yml by `make prometheusrule`: edit that
# file, not this one (a test fails when they differ).
"""


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as `|` blocks, as in the source file."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def prometheus_rule(groups: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "asan",
            "labels": {
                "app.kubernetes.io/name": "asan",
                "app.kubernetes.io/component": "monitoring",
                # kube-prometheus's Prometheus selects rules with these.
                "prometheus": "k8s",
                "role": "alert-rules",
            },
        },
        "spec": groups,
    }


def render() -> str:
    groups = yaml.safe_load(RULES.read_text())
    body = yaml.dump(
        prometheus_rule(groups), Dumper=_BlockStyleDumper, sort_keys=False, width=110, allow_unicode=True
    )
    return HEADER + body


def main() -> int:
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(Path.cwd()) if TARGET.is_relative_to(Path.cwd()) else TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
