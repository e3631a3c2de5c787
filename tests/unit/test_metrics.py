"""The scorer's Prometheus metrics: names, values, promtool lint and the HTTP endpoint."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scorestream.monitoring.drift import DriftWindow, build_profile_numpy, drift_report
from scorestream.monitoring.errors import MetricsError
from scorestream.monitoring.metrics import (
    DEAD_LETTER_REASONS,
    LATENCY_BUCKETS,
    ScorerMetrics,
    serve,
)

pytestmark = pytest.mark.unit


def _samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return _samples(registry)[(name, frozenset(labels.items()))]


def _report(shift: float = 0.0):
    rng = np.random.default_rng(0)
    columns = {"amount": rng.normal(size=4000), "channel": rng.choice(["web", "app"], 4000)}
    profile = build_profile_numpy(columns, ["amount"], ["channel"], rng.random(4000))
    window = DriftWindow(max_rows=2000, sizes=profile.sizes())
    live = {"amount": rng.normal(size=2000) + shift, "channel": rng.choice(["web", "app"], 2000)}
    live["amount"][:100] = np.nan
    window.add_batch(0.0, *profile.count_batch(live, rng.random(2000)))
    return drift_report(profile, window)


def exercised_registry() -> CollectorRegistry:
    """A registry after every ScorerMetrics method has been called (used by the dashboard test)."""
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry, features=["amount", "channel"])
    metrics.record_batch(
        100,
        90,
        {"DECODE_ERROR": 6, "OUT_OF_RANGE": 4},
        0.8,
        [0.004, 0.02, 0.02, 3.0, 120.0],
        batch_id=7,
        completed_at=1.7e9,
    )
    metrics.set_progress(1234.5, 42)
    metrics.set_model(3, "champion")
    metrics.model_load_failed()
    metrics.listener_failed("shadow")
    metrics.listener_failed("shadow")
    metrics.set_drift(_report())
    metrics.set_shadow(0.97, 0.012, 90)
    return registry


def test_record_batch_counts_and_histograms() -> None:
    registry = exercised_registry()
    assert _value(registry, "scorestream_records_in_total") == 100
    assert _value(registry, "scorestream_records_scored_total") == 90
    assert _value(registry, "scorestream_records_dead_lettered_total", reason="DECODE_ERROR") == 6
    assert _value(registry, "scorestream_records_dead_lettered_total", reason="OUT_OF_RANGE") == 4
    for reason in DEAD_LETTER_REASONS:  # all present from the start, so rate() sees them
        assert (
            "scorestream_records_dead_lettered_total",
            frozenset({"reason": reason}.items()),
        ) in _samples(registry)
    assert _value(registry, "scorestream_batch_duration_seconds_count") == 1
    assert _value(registry, "scorestream_batch_duration_seconds_sum") == pytest.approx(0.8)
    latency = "scorestream_end_to_end_latency_seconds"
    assert LATENCY_BUCKETS[0] == 0.005 and LATENCY_BUCKETS[-1] == 60.0
    assert _value(registry, f"{latency}_bucket", le="0.005") == 1
    assert _value(registry, f"{latency}_bucket", le="0.025") == 3  # le is inclusive
    assert _value(registry, f"{latency}_bucket", le="60.0") == 4
    assert _value(registry, f"{latency}_bucket", le="+Inf") == 5
    assert _value(registry, f"{latency}_count") == 5
    assert _value(registry, f"{latency}_sum") == pytest.approx(123.044)
    assert _value(registry, "scorestream_batch_id") == 7
    assert _value(registry, "scorestream_last_batch_completed_timestamp_seconds") == 1.7e9
    assert _value(registry, "scorestream_input_rows_per_second") == 1234.5
    assert _value(registry, "scorestream_offsets_behind_latest") == 42
    assert _value(registry, "scorestream_model_load_failures_total") == 1
    assert _value(registry, "scorestream_listener_failures_total", listener="shadow") == 2
    assert _value(registry, "scorestream_shadow_agreement_ratio") == 0.97
    assert _value(registry, "scorestream_shadow_score_mean_abs_diff") == 0.012
    assert _value(registry, "scorestream_shadow_records_total") == 90


def test_latency_histogram_accumulates_numpy_batches() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry)
    for _ in range(3):
        metrics.record_batch(1000, 1000, {}, 0.1, np.full(1000, 0.03), batch_id=1, completed_at=1.0)
    assert _value(registry, "scorestream_end_to_end_latency_seconds_bucket", le="0.025") == 0
    assert _value(registry, "scorestream_end_to_end_latency_seconds_bucket", le="0.05") == 3000
    assert _value(registry, "scorestream_end_to_end_latency_seconds_sum") == pytest.approx(90.0)


def test_model_info_keeps_one_series_and_counts_swaps() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry)
    metrics.set_model(1, "champion")
    metrics.set_model(1, "champion")
    assert _value(registry, "scorestream_model_swaps_total") == 0
    metrics.set_model(2, "champion")
    info = {k: v for k, v in _samples(registry).items() if k[0] == "scorestream_model_info"}
    assert info == {
        ("scorestream_model_info", frozenset({"version": "2", "alias": "champion"}.items())): 1.0
    }
    assert _value(registry, "scorestream_model_swaps_total") == 1


def test_drift_series_come_from_the_report() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry, features=["amount", "channel"])
    assert _value(registry, "scorestream_drift_window_rows") == 0
    assert not [k for k in _samples(registry) if k[0] == "scorestream_feature_psi"]
    report = _report(shift=2.0)
    metrics.set_drift(report)
    by_name = {d.feature: d for d in report}
    assert _value(registry, "scorestream_drift_window_rows") == 2000
    assert _value(
        registry, "scorestream_feature_psi", feature="amount", kind="numeric"
    ) == pytest.approx(by_name["amount"].psi)
    assert by_name["amount"].psi > 0.25
    assert _value(
        registry, "scorestream_feature_js_distance", feature="channel", kind="categorical"
    ) == pytest.approx(by_name["channel"].js)
    assert _value(registry, "scorestream_feature_missing_ratio", feature="amount") == 0.05
    assert _value(registry, "scorestream_prediction_psi") == pytest.approx(by_name["score"].psi)
    assert _value(registry, "scorestream_prediction_js_distance") == pytest.approx(
        by_name["score"].js
    )
    # the score is exported as prediction_*, never as a feature label value
    assert not [k for k in _samples(registry) if ("feature", "score") in k[1]]


def test_drift_of_features_outside_the_allowlist_is_dropped() -> None:
    registry = CollectorRegistry()
    ScorerMetrics(registry, features=["amount"]).set_drift(_report())
    features = {
        dict(k[1]).get("feature") for k in _samples(registry) if k[0] == "scorestream_feature_psi"
    }
    assert features == {"amount"}


def test_unknown_reason_and_negative_counts_raise() -> None:
    metrics = ScorerMetrics(CollectorRegistry())
    with pytest.raises(MetricsError, match=r"'BOGUS'.*DECODE_ERROR"):
        metrics.record_batch(1, 0, {"BOGUS": 1}, 0.1, [], batch_id=0, completed_at=0.0)
    with pytest.raises(MetricsError, match="records_in=-1"):
        metrics.record_batch(-1, 0, {}, 0.1, [], batch_id=0, completed_at=0.0)


def test_missing_lag_is_nan() -> None:
    registry = CollectorRegistry()
    ScorerMetrics(registry).set_progress(0.0, None)
    assert np.isnan(_value(registry, "scorestream_offsets_behind_latest"))


def test_promtool_check_metrics_is_clean() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH (Debian package 'prometheus')"
    exposition = generate_latest(exercised_registry())
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == b"" and done.stderr.strip() == b""


def test_serve_on_port_zero_answers_http() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry)
    metrics.record_batch(5, 5, {}, 0.1, [0.1], batch_id=1, completed_at=1.0)
    server, port = serve(metrics, port=0)
    try:
        assert port > 0
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
            assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()
    assert "scorestream_records_in_total 5.0" in body
