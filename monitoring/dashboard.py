"""Every PromQL expression of the Grafana dashboard and the alert rules, for tests to check."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "grafana" / "dashboards" / "scorestream.json"
RULES = HERE / "prometheus" / "rules.yml"


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from iter_panels(panel)


def dashboard_exprs(path: str | Path = DASHBOARD) -> list[str]:
    """The `expr` of every Prometheus target of every panel, in panel order."""
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        target["expr"]
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def rule_exprs(path: str | Path = RULES) -> list[str]:
    """The `expr` of every alerting and recording rule of a Prometheus rules file."""
    rules = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return [
        str(rule["expr"]).strip()
        for group in rules.get("groups", [])
        for rule in group.get("rules", [])
    ]
