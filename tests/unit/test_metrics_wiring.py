"""Pieces of the live monitoring that need no JVM: bucketed latency, lag from query progress,
monitoring settings and flags, and the reason codes shared with the validator."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from scorestream.cli.monitoring import metrics_args, monitor_settings, port_number
from scorestream.contract.reasons import REASONS
from scorestream.errors import ConfigError
from scorestream.monitoring.errors import MetricsError
from scorestream.monitoring.histogram import BulkHistogram
from scorestream.monitoring.metrics import ScorerMetrics, serve
from scorestream.monitoring.settings import MonitorSettings
from scorestream.streaming.monitor import offsets_behind_latest

pytestmark = pytest.mark.unit


def test_observe_counts_equals_observe_many() -> None:
    rng = np.random.default_rng(3)
    values = rng.exponential(0.5, size=5000)
    values[:10] = [0.005, 0.01, 1.0, 60.0, 61.0, 0.0, 0.0049, 0.0051, 30.0, 1e6]
    direct = BulkHistogram("a_seconds", "a", [0.005, 0.01, 0.1, 1.0, 30.0, 60.0])
    direct.observe_many(values)
    bounds = np.asarray(direct.bounds[:-1])
    # What Spark computes: index = number of bounds strictly below the value (value <= bound).
    index = np.searchsorted(bounds, values, side="left")
    bucketed = BulkHistogram("a_seconds", "a", [0.005, 0.01, 0.1, 1.0, 30.0, 60.0])
    bucketed.observe_counts(np.bincount(index, minlength=len(bounds) + 1), float(values.sum()))
    (one,), (two,) = direct.collect(), bucketed.collect()
    assert [(s.labels, s.value) for s in one.samples] == [(s.labels, s.value) for s in two.samples]


@pytest.mark.parametrize(
    ("counts", "total"),
    [([1, 2], 1.0), ([1, 2, 3, 4, 5, -1, 0, 0], 1.0), ([0] * 8, math.nan), ([0.5] * 8, 1.0)],
)
def test_observe_counts_rejects_bad_input(counts: list[float], total: float) -> None:
    hist = BulkHistogram("a_seconds", "a", [0.005, 0.01, 0.1, 1.0, 30.0, 60.0])
    with pytest.raises(MetricsError, match="bucket counts must be 7 non-negative integers"):
        hist.observe_counts(counts, total)


def test_set_features_replaces_the_allowlist() -> None:
    metrics = ScorerMetrics(CollectorRegistry(), features=["a"])
    metrics.set_features(["b", "c"])
    assert metrics.features == frozenset({"b", "c"})


def _source(end: dict, latest: dict | None, metrics: dict | None = None) -> dict:
    source = {"endOffset": json.dumps(end), "metrics": metrics or {}}
    if latest is not None:
        source["latestOffset"] = json.dumps(latest)
    return source


def test_lag_sums_over_partitions() -> None:
    end = {"features": {"0": 100, "1": 250}}
    latest = {"features": {"0": 160, "1": 250}}
    assert offsets_behind_latest(_source(end, latest)) == 60.0
    # A partition the batch has not read yet counts from offset 0.
    latest["features"]["2"] = 7
    assert offsets_behind_latest(_source(end, latest)) == 67.0


def test_lag_falls_back_to_sparks_metric_then_none() -> None:
    assert offsets_behind_latest(_source({}, None, {"maxOffsetsBehindLatest": "12"})) == 12.0
    assert offsets_behind_latest({"endOffset": None, "latestOffset": None}) is None


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    metrics_args(parser)
    return parser.parse_args(argv)


def test_flags_default_and_port_zero() -> None:
    settings = monitor_settings(_args())
    assert settings == MonitorSettings()
    assert settings.metrics_port == 9400 and settings.window_events == 10_000
    assert settings.window_seconds is None
    settings = monitor_settings(
        _args("--metrics-port", "0", "--drift-window-events", "0", "--drift-window-minutes", "5")
    )
    assert settings.metrics_port == 0
    assert settings.window_events is None and settings.window_seconds == 300.0


def test_bad_flags_name_the_value() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="'70000'"):
        port_number("70000")
    with pytest.raises(argparse.ArgumentTypeError, match="'http'"):
        port_number("http")
    with pytest.raises(ConfigError, match="got -5"):
        monitor_settings(_args("--drift-window-events", "-5"))
    with pytest.raises(MetricsError, match="needs a number of events or a duration"):
        monitor_settings(_args("--drift-window-events", "0"))
    # Without drift no window is needed.
    assert not monitor_settings(_args("--drift", "false", "--drift-window-events", "0")).drift


def test_a_taken_port_is_a_clear_error() -> None:
    first = ScorerMetrics(CollectorRegistry())
    server, port = serve(first, "127.0.0.1", 0)
    try:
        with pytest.raises(MetricsError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            serve(ScorerMetrics(CollectorRegistry()), "127.0.0.1", port)
    finally:
        server.shutdown()
        server.server_close()


def test_batch_counts_by_reason_add_up_and_a_foreign_reason_fails_loudly() -> None:
    from scorestream.errors import ScorestreamError
    from scorestream.streaming.accounting import REASONS_TALLY, by_reason
    from scorestream.tally import Tallied

    keys = {0: 7, 1 + REASONS.index("DECODE_ERROR"): 2, 1 + REASONS.index("OUT_OF_RANGE"): 1}
    assert by_reason(Tallied({REASONS_TALLY: keys}, {})) == {
        None: 7,
        "DECODE_ERROR": 2,
        "OUT_OF_RANGE": 1,
    }
    assert by_reason(Tallied({REASONS_TALLY: {}}, {})) == {None: 0}  # an empty batch
    keys[-1] = 1  # one dead-lettered record whose reason has no counter
    with pytest.raises(ScorestreamError, match="1 dead-lettered record"):
        by_reason(Tallied({REASONS_TALLY: keys}, {}))


def test_tallied_reads_bins_missing_and_sums() -> None:
    from scorestream.errors import ScorestreamError
    from scorestream.tally import Tallied

    tallied = Tallied({"a": {0: 3, 2: 5, 3: 1}, "b": {7: 2}}, {"a": {0: 1.5, 2: 2.0}})
    counts, missing = tallied.bins("a", 3)
    assert counts.tolist() == [3, 0, 5] and missing == 1
    assert counts.dtype == np.int64
    assert tallied.total("a") == 9 and tallied.sum("a") == 3.5 and tallied.sum("b") == 0.0
    assert tallied.count("a", 1) == 0 and tallied.count("nope", 0) == 0
    with pytest.raises(ScorestreamError, match=r"tally 'b': keys \[7\] outside 0\.\.3"):
        tallied.bins("b", 3)
