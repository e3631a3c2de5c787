"""The provisioned Grafana dashboard: fixed datasource uid, and PromQL over metrics we export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scorestream.monitoring.dashboard import (
    DASHBOARD,
    RULES,
    dashboard_exprs,
    iter_panels,
    rule_exprs,
)
from scorestream.monitoring.drift import DriftWindow, ReferenceProfile, drift_report
from scorestream.monitoring.metrics import ScorerMetrics

pytestmark = pytest.mark.unit

GRAFANA = Path(__file__).resolve().parents[2] / "monitoring" / "grafana"
METRIC = re.compile(r"\bscorestream_[a-zA-Z0-9_]+")
PAIRS = {")": "(", "]": "[", "}": "{"}


def _provisioned_uid() -> str:
    config = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (source,) = config["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://127.0.0.1:9090"
    return str(source["uid"])


def _exported_names() -> set[str]:
    """Sample names a scrape shows once every ScorerMetrics method has been called."""
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry)
    profile = ReferenceProfile.from_dict(
        {
            "numeric": {"x": {"edges": [0.0], "counts": [5, 5], "missing_rate": 0.0}},
            "categorical": {"c": {"categories": ["a"], "counts": [10, 0], "missing_rate": 0.0}},
            "score": {"edges": [0.5], "counts": [5, 5], "missing_rate": 0.0},
            "rows": 10,
        }
    )
    window = DriftWindow(max_rows=10, sizes=profile.sizes())
    window.add_batch(0.0, 4, {"x": [1, 3], "c": [3, 1], "__score__": [2, 2]}, {})
    metrics.record_batch(4, 3, {"WRONG_TYPE": 1}, 0.2, [0.1], batch_id=1, completed_at=1.0)
    metrics.set_progress(10.0, 0)
    metrics.set_model(1, "champion")
    metrics.model_load_failed()
    metrics.set_drift(drift_report(profile, window))
    metrics.set_shadow(1.0, 0.0, 3)
    text = generate_latest(registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _balanced(expr: str) -> bool:
    stack: list[str] = []
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):  # brackets inside strings don't count
        if char in "([{":
            stack.append(char)
        elif char in PAIRS and (not stack or stack.pop() != PAIRS[char]):
            return False
    return not stack


def test_provisioning_points_at_the_dashboards() -> None:
    assert _provisioned_uid() == "scorestream-prometheus"
    config = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "scorestream.yml").read_text()
    )
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_uses_the_provisioned_uid_never_an_import_input() -> None:
    text = DASHBOARD.read_text()
    assert "${DS_" not in text and "__inputs" not in text
    dashboard = json.loads(text)
    assert 36 <= dashboard["schemaVersion"] <= 41
    uid = _provisioned_uid()
    panels = [p for p in iter_panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == uid, panel["title"]
    ids = [p["id"] for p in iter_panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_dashboard_covers_what_operators_need() -> None:
    exprs = "\n".join(dashboard_exprs(DASHBOARD))
    for needle in (
        "rate(scorestream_records_in_total",
        "rate(scorestream_records_scored_total",
        "sum by (reason) (rate(scorestream_records_dead_lettered_total",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "scorestream_offsets_behind_latest",
        "scorestream_feature_psi",
        "scorestream_feature_js_distance",
        "scorestream_prediction_psi",
        "scorestream_model_info",
        "scorestream_shadow_agreement_ratio",
        "time() - scorestream_last_batch_completed_timestamp_seconds",
    ):
        assert needle in exprs, needle


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_exprs_are_balanced_and_use_only_exported_metrics(source: str) -> None:
    exprs = dashboard_exprs(DASHBOARD) if source == "dashboard" else rule_exprs(RULES)
    assert exprs
    exported = _exported_names()
    for expr in exprs:
        assert _balanced(expr), expr
        assert "$" not in expr, f"Grafana variables are not PromQL: {expr}"
        unknown = set(METRIC.findall(expr)) - exported
        assert not unknown, f"{expr!r} uses metrics ScorerMetrics does not export: {unknown}"


def test_balanced_helper() -> None:
    assert _balanced('sum by (le) (rate(x{a="(["}[5m]))')
    assert not _balanced("sum(rate(x[5m])")
    assert not _balanced("sum(rate(x[5m)])")


def test_promtool_parses_every_dashboard_expr(tmp_path: Path) -> None:
    """promtool has no bare-expression check, but it parses the expr of every recording rule."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH (Debian package 'prometheus')"
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard_expr_{i}", "expr": expr}
                    for i, expr in enumerate(dashboard_exprs(DASHBOARD))
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
