"""Retraining without a JVM: the drift trigger against a real /metrics endpoint, the trigger
loops (schedule, drift, stop), the flags and the refusals."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from scorestream.cli import build_parser, main
from scorestream.cli.retrain import duration, plan
from scorestream.errors import ConfigError, ModelError
from scorestream.models.registry import ModelVersion
from scorestream.models.retrain import estimator_of
from scorestream.monitoring import drift_trigger
from scorestream.monitoring.drift import FeatureDrift
from scorestream.monitoring.drift_trigger import DriftReading, DriftTrigger, alert, scrape
from scorestream.monitoring.errors import MetricsError
from scorestream.monitoring.metrics import ScorerMetrics, serve
from scorestream.streaming import retrain as loop
from scorestream.streaming.retrain import Schedule, run
from scorestream.streaming.training_set import DataWindow

pytestmark = pytest.mark.unit


def _served(psi_amount: float, rows: int, version: int = 3) -> tuple[Any, DriftTrigger]:
    metrics = ScorerMetrics(CollectorRegistry(), features=["amount", "country"])
    metrics.set_model(version, "champion")
    metrics.set_drift(
        [
            FeatureDrift("amount", "numeric", psi_amount, 0.2, 0.0, rows),
            FeatureDrift("country", "categorical", 0.02, 0.01, 0.0, rows),
            FeatureDrift("score", "prediction", 0.05, 0.03, 0.0, rows),
        ]
    )
    server, port = serve(metrics, port=0)
    return server, DriftTrigger(f"http://127.0.0.1:{port}/metrics", 0.25, min_window=1_000)


def test_the_gauges_are_read_from_a_scorers_metrics_endpoint() -> None:
    server, trigger = _served(0.61, 1_200)
    try:
        reading = scrape(trigger)
    finally:
        server.shutdown()
        server.server_close()
    assert reading.window_rows == 1_200 and reading.serving_version == 3
    assert reading.psi == {"amount": 0.61, "country": 0.02, "score": 0.05}
    assert reading.worst() == ("amount", 0.61)
    assert alert(reading, trigger) == (
        "drift: PSI of amount 0.6100 >= 0.25 over 1200 scored events of model v3"
    )


def test_no_alert_below_the_threshold_or_the_minimum_window() -> None:
    trigger = DriftTrigger("http://127.0.0.1:1/metrics", 0.25, min_window=1_000)
    high = {"amount": 0.9}
    assert alert(DriftReading(999, high, 1), trigger) is None  # too few rows to trust
    assert alert(DriftReading(5_000, {"amount": 0.249}, 1), trigger) is None
    assert alert(DriftReading(5_000, {}, 1), trigger) is None  # nothing exported yet
    assert alert(DriftReading(1_000, high, 1), trigger) is not None
    score_only = DriftReading(5_000, {"amount": 0.1, "score": 0.3}, 1)
    assert alert(score_only, trigger) is not None
    assert alert(score_only, DriftTrigger(trigger.url, 0.25, 1_000, False)) is None


def test_the_gauge_names_are_the_ones_the_scorer_exports() -> None:
    metrics = ScorerMetrics(CollectorRegistry())
    names = {m.name for m in metrics.registry.collect()}
    t = drift_trigger
    assert {t.FEATURE_PSI, t.PREDICTION_PSI, t.WINDOW_ROWS, t.MODEL_INFO} <= names


def test_an_unreachable_scorer_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    trigger = DriftTrigger(f"http://127.0.0.1:{port}/metrics", timeout_s=2.0)
    with pytest.raises(MetricsError, match=f"127.0.0.1:{port}/metrics"):
        scrape(trigger)
    with pytest.raises(MetricsError, match="must be http"):
        DriftTrigger("127.0.0.1:9400/metrics")
    with pytest.raises(MetricsError, match="not Prometheus text"):
        drift_trigger.parse_metrics("scorestream_feature_psi{feature=} x y z\n")


def _entry(version: int) -> ModelVersion:
    return ModelVersion(version, Path(f"/r/v{version}"), {"estimator": {"kind": "logistic"}})


def test_on_demand_runs_once() -> None:
    calls: list[str] = []
    made = run(lambda t: (calls.append(t), _entry(2))[1], Schedule(), threading.Event())
    assert calls == ["on demand"] and [m.version for m in made] == [2]


def test_a_schedule_runs_until_max_runs_or_stop() -> None:
    calls: list[str] = []
    stop = threading.Event()
    made = run(
        lambda t: (calls.append(t), _entry(len(calls)))[1],
        Schedule(every_s=0.01, max_runs=3),
        stop,
    )
    assert len(made) == 3 and calls == ["schedule: every 0.01 s"] * 3

    # A stop (what SIGTERM sets) ends the wait between runs at once, not after the interval.
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    began = time.monotonic()
    made = run(lambda t: _entry(1), Schedule(every_s=3600), stop)
    assert len(made) == 1 and time.monotonic() - began < 5


def test_a_failed_run_in_a_loop_is_logged_and_the_loop_goes_on() -> None:
    outcomes = iter([ConfigError("too few labels"), _entry(5)])

    def once(_t: str) -> ModelVersion:
        item = next(outcomes)
        if isinstance(item, Exception):
            raise item
        return item

    made = run(once, Schedule(every_s=0.01, max_runs=2), threading.Event())
    assert [m.version for m in made] == [5]
    with pytest.raises(ConfigError):
        run(lambda _t: (_ for _ in ()).throw(ConfigError("x")), Schedule(), threading.Event())


def test_drift_retrains_once_per_serving_version(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter(
        [
            DriftReading(2_000, {"amount": 0.05}, 1),  # calm
            DriftReading(2_000, {"amount": 0.9}, 1),  # alert: retrain
            DriftReading(2_000, {"amount": 0.9}, 1),  # same champion: no second run
            DriftReading(2_000, {"amount": 0.03}, 2),  # promoted, calm
            DriftReading(2_000, {"amount": 0.7}, 2),  # drift again on v2: retrain
        ]
    )
    stop = threading.Event()

    def fake_scrape(_trigger: DriftTrigger) -> DriftReading:
        try:
            return next(readings)
        except StopIteration:
            stop.set()
            return DriftReading(0)

    monkeypatch.setattr(loop, "scrape", fake_scrape)
    calls: list[str] = []
    trigger = DriftTrigger("http://127.0.0.1:9/metrics")
    made = run(
        lambda t: (calls.append(t), _entry(len(calls) + 1))[1],
        Schedule(drift=trigger, poll_s=0.01),
        stop,
    )
    assert len(made) == 2
    assert calls[0].startswith("drift: PSI of amount 0.9000") and calls[0].endswith("model v1")
    assert calls[1].endswith("model v2")


def test_schedule_and_window_refusals() -> None:
    with pytest.raises(ConfigError, match="not both"):
        Schedule(every_s=60, drift=DriftTrigger("http://127.0.0.1:9400/metrics"))
    with pytest.raises(ConfigError, match="max runs"):
        Schedule(every_s=60, max_runs=0)
    with pytest.raises(ConfigError, match="one of since"):
        DataWindow(since_s=60, last=10)
    with pytest.raises(ConfigError, match="N >= 1"):
        DataWindow(since_s=None, last=0)
    with pytest.raises(ModelError, match=r"\['learning_rate'\] are unknown to this scorestream"):
        estimator_of(
            ModelVersion(1, Path("/r/v1"), {"estimator": {"kind": "gbt", "learning_rate": 1}})
        )
    assert (
        estimator_of(
            ModelVersion(1, Path("/r/v1"), {"estimator": {"kind": "logistic", "reg_param": 0.5}})
        ).reg_param
        == 0.5
    )


def test_durations_and_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert [duration(t) for t in ("90", "30s", "10m", "2h", "1.5d")] == [
        90, 30, 600, 7200, 129600,
    ]  # fmt: skip
    args = build_parser().parse_args(
        ["retrain", "--registry", str(tmp_path), "--last", "2000", "--on-drift",
         "http://127.0.0.1:9400/metrics", "--psi-threshold", "0.3", "--min-window", "500",
         "--poll-interval", "10s", "--max-runs", "2"]
    )  # fmt: skip
    settings, window, schedule = plan(args)
    assert (window.last, window.since_s, window.labels_topic) == (2000, None, "labels")
    assert schedule.drift is not None and schedule.drift.psi_threshold == 0.3
    assert (schedule.drift.min_window, schedule.poll_s, schedule.max_runs) == (500, 10, 2)
    assert settings.base == "champion" and settings.alias == "challenger"
    default = plan(build_parser().parse_args(["retrain"]))[1]
    assert (default.since_s, default.last) == (3600, None)
    # Refusals exit 2 with the reason, before Spark starts.
    assert main(["retrain", "--since", "2h", "--last", "10"]) == 2
    assert "--since or --last" in capsys.readouterr().err
    assert main(["retrain", "--every", "10m", "--on-drift", "http://127.0.0.1:1/metrics"]) == 2
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["retrain", "--every", "ten minutes"])
    assert "expected a duration such as 30s" in capsys.readouterr().err
