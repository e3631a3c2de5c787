"""The Prometheus config and alert rules: promtool checks and unit tests, and their coverage."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scorestream.monitoring.dashboard import rule_exprs

pytestmark = pytest.mark.unit

PROMETHEUS = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
RULES_TEST = PROMETHEUS / "rules_test.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH (Debian package 'prometheus')"
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=PROMETHEUS
    )


def _alert_names() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule_exprs(RULES))} rules found" in done.stdout


def test_promtool_check_config() -> None:
    done = _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "scorestream")
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9400"]  # the default port
    assert config["rule_files"] == ["rules.yml"]


def test_promtool_test_rules() -> None:
    done = _promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    expected = {
        "ScorestreamFeatureDrift",
        "ScorestreamPredictionDrift",
        "ScorestreamDeadLetterRateHigh",
        "ScorestreamLagGrowing",
        "ScorestreamDown",
        "ScorestreamModelLoadFailing",
        "ScorestreamNoRecentBatch",
    }
    names = _alert_names()
    assert set(names) == expected and len(names) == len(expected)
    tests = yaml.safe_load(RULES_TEST.read_text())
    assert tests["rule_files"] == ["rules.yml"]
    cases = [case for t in tests["tests"] for case in t.get("alert_rule_test", [])]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert fires >= expected, f"never tested firing: {sorted(expected - fires)}"
    assert silent >= expected, f"never tested silent: {sorted(expected - silent)}"
    unknown = (fires | silent) - expected
    assert not unknown, f"tests of alerts rules.yml does not define: {sorted(unknown)}"


def test_every_alert_has_severity_and_summary() -> None:
    rules = yaml.safe_load(RULES.read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"] if "alert" in r):
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_drift_alerts_require_a_large_window() -> None:
    rules = {
        r["alert"]: r
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    for name in ("ScorestreamFeatureDrift", "ScorestreamPredictionDrift"):
        assert "scorestream_drift_window_rows >= 1000" in rules[name]["expr"]
        assert rules[name]["for"] == "5m"
