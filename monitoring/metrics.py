"""Every Prometheus metric the scorer exports, declared in one class with an injectable registry.

Names are the contract with the Grafana dashboard, the alert rules and the scorer. Label values
are bounded: `reason` by DEAD_LETTER_REASONS, `feature` by the model's reference profile, `kind`
by {numeric, categorical}, and `scorestream_model_info` keeps one series (the current model).

One module (about 320 lines) on purpose, for that contract: every exported name is declared
here and nowhere else, so the dashboard and the rules are checked against one file.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from wsgiref.simple_server import WSGIServer

import numpy.typing as npt
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scorestream.contract.reasons import REASONS
from scorestream.monitoring.drift import FeatureDrift
from scorestream.monitoring.errors import MetricsError
from scorestream.monitoring.histogram import BulkHistogram

log = logging.getLogger(__name__)

# The label values of the dead-letter counter: the contract's reason codes, all of them.
DEAD_LETTER_REASONS = REASONS
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BATCH_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _DriftCollector(Collector):
    """Exposes the latest drift report at scrape time (values change as a whole, never alone)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report: tuple[FeatureDrift, ...] = ()
        self._window_rows = 0

    def update(self, report: Sequence[FeatureDrift]) -> None:
        with self._lock:
            self._report = tuple(report)
            self._window_rows = max((d.window_rows for d in report), default=0)

    def _families(self) -> dict[str, GaugeMetricFamily]:
        return {
            "psi": GaugeMetricFamily(
                "scorestream_feature_psi",
                "Population stability index of a feature, drift window vs training profile.",
                labels=["feature", "kind"],
            ),
            "js": GaugeMetricFamily(
                "scorestream_feature_js_distance",
                "Jensen-Shannon distance (base 2) of a feature, drift window vs training.",
                labels=["feature", "kind"],
            ),
            "missing": GaugeMetricFamily(
                "scorestream_feature_missing_ratio",
                "Share of rows in the drift window where the feature is missing.",
                labels=["feature"],
            ),
            "rows": GaugeMetricFamily("scorestream_drift_window_rows", "Rows in the drift window."),
            "prediction_psi": GaugeMetricFamily(
                "scorestream_prediction_psi",
                "Population stability index of the model score, drift window vs training.",
            ),
            "prediction_js": GaugeMetricFamily(
                "scorestream_prediction_js_distance",
                "Jensen-Shannon distance (base 2) of the model score, drift window vs training.",
            ),
        }

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            report, rows = self._report, self._window_rows
        fam = self._families()
        fam["rows"].add_metric([], rows)
        # NaN means "nothing to compare yet": leave the series out rather than export NaN
        for d in report:
            if d.kind == "prediction":
                if not math.isnan(d.psi):
                    fam["prediction_psi"].add_metric([], d.psi)
                    fam["prediction_js"].add_metric([], d.js)
                continue
            if not math.isnan(d.psi):
                fam["psi"].add_metric([d.feature, d.kind], d.psi)
                fam["js"].add_metric([d.feature, d.kind], d.js)
            if not math.isnan(d.missing_rate):
                fam["missing"].add_metric([d.feature], d.missing_rate)
        return list(fam.values())


class ScorerMetrics:
    """The scorer's metrics on one registry (the global one unless a registry is given).

    features, when given, is the allowlist of `feature` label values (the model's profile);
    drift of any other name is dropped with a warning so the label set stays bounded.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, features: Sequence[str] = ()
    ) -> None:
        self.registry = REGISTRY if registry is None else registry
        self.features = frozenset(features)
        r = self.registry
        self.records_in = Counter(
            "scorestream_records_in_total", "Records read from the input topic.", registry=r
        )
        self.records_scored = Counter(
            "scorestream_records_scored_total",
            "Records scored and written to the output topic.",
            registry=r,
        )
        self.records_dead_lettered = Counter(
            "scorestream_records_dead_lettered_total",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in DEAD_LETTER_REASONS:  # every reason exists from the start, so rate() works
            self.records_dead_lettered.labels(reason=reason)
        self.model_load_failures = Counter(
            "scorestream_model_load_failures_total",
            "Failed attempts to load a model version from the registry.",
            registry=r,
        )
        self.listener_failures = Counter(
            "scorestream_listener_failures_total",
            "Failures of a batch listener (shadow, feedback, monitor) or of the per-batch "
            "accounting (tallies, accounting); the batch itself was published.",
            ["listener"],
            registry=r,
        )
        self.model_swaps = Counter(
            "scorestream_model_swaps_total",
            "Times the scorer switched to another model version or alias.",
            registry=r,
        )
        self.batch_duration = Histogram(
            "scorestream_batch_duration_seconds",
            "Wall time of one micro-batch from its start until its output is on Kafka.",
            buckets=BATCH_DURATION_BUCKETS,
            registry=r,
        )
        self.end_to_end_latency = BulkHistogram(
            "scorestream_end_to_end_latency_seconds",
            "Time from a record's event time to the moment it was scored (its scored_at).",
            LATENCY_BUCKETS,
        )
        r.register(self.end_to_end_latency)
        self.input_rows_per_second = Gauge(
            "scorestream_input_rows_per_second",
            "Input rate of the last query progress report.",
            registry=r,
        )
        self.offsets_behind_latest = Gauge(
            "scorestream_offsets_behind_latest",
            "Offsets between the query's position and the latest offsets of the input topic "
            "(NaN when Spark does not report it).",
            registry=r,
        )
        self.last_batch_completed = Gauge(
            "scorestream_last_batch_completed_timestamp_seconds",
            "Unix time the last micro-batch finished (0 before the first).",
            registry=r,
        )
        self.batch_id = Gauge("scorestream_batch_id", "Id of the last micro-batch.", registry=r)
        self.model_info = Gauge(
            "scorestream_model_info",
            "The model version being served (value is always 1).",
            ["version", "alias"],
            registry=r,
        )
        self.shadow_agreement = Gauge(
            "scorestream_shadow_agreement_ratio",
            "Share of records where the shadow model's decision equals the served model's.",
            registry=r,
        )
        self.shadow_mean_abs_diff = Gauge(
            "scorestream_shadow_score_mean_abs_diff",
            "Mean absolute difference between shadow and served scores.",
            registry=r,
        )
        self.shadow_records = Counter(
            "scorestream_shadow_records_total", "Records scored by the shadow model.", registry=r
        )
        self._drift = _DriftCollector()
        r.register(self._drift)
        self._model: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def record_batch(
        self,
        records_in: int,
        scored: int,
        dead_lettered_by_reason: Mapping[str, int],
        duration_s: float,
        latencies_s: Sequence[float] | npt.NDArray = (),
        *,
        batch_id: int,
        completed_at: float,
    ) -> None:
        """Count one finished micro-batch; completed_at is a Unix timestamp in seconds.

        Latencies bucketed elsewhere (in Spark) go to ``end_to_end_latency.observe_counts``.
        """
        unknown = set(dead_lettered_by_reason) - set(DEAD_LETTER_REASONS)
        if unknown:
            msg = (
                f"unknown dead-letter reason(s) {sorted(unknown)!r}; "
                f"valid reasons are {list(DEAD_LETTER_REASONS)!r}"
            )
            raise MetricsError(msg)
        counts = [records_in, scored, *dead_lettered_by_reason.values()]
        if any(c < 0 for c in counts):
            msg = (
                f"record counts must be >= 0, got {records_in=}, {scored=}, "
                f"dead-lettered {dict(dead_lettered_by_reason)!r}"
            )
            raise MetricsError(msg)
        self.records_in.inc(records_in)
        self.records_scored.inc(scored)
        for reason, n in dead_lettered_by_reason.items():
            self.records_dead_lettered.labels(reason=reason).inc(n)
        self.batch_duration.observe(duration_s)
        self.end_to_end_latency.observe_many(latencies_s)
        self.batch_id.set(batch_id)
        self.last_batch_completed.set(completed_at)

    def set_progress(
        self, input_rows_per_second: float, offsets_behind_latest: float | None
    ) -> None:
        """Values from Spark's query progress; None (not reported) is exported as NaN."""
        self.input_rows_per_second.set(input_rows_per_second)
        self.offsets_behind_latest.set(
            math.nan if offsets_behind_latest is None else offsets_behind_latest
        )

    def set_model(self, version: int | str, alias: str) -> None:
        """Point model_info at this model; a change after the first call counts as a swap."""
        new = (str(version), alias)
        with self._lock:
            if new == self._model:
                return
            if self._model is not None:
                self.model_info.remove(*self._model)
                self.model_swaps.inc()
            self.model_info.labels(*new).set(1)
            self._model = new

    def set_features(self, features: Sequence[str]) -> None:
        """Replace the allowlist of `feature` label values (a new model's profile)."""
        self.features = frozenset(features)

    def model_load_failed(self) -> None:
        self.model_load_failures.inc()

    def listener_failed(self, listener: str) -> None:
        """A listener (or the accounting) failed on a batch; `listener` is its name."""
        self.listener_failures.labels(listener=listener).inc()

    def set_drift(self, report: Sequence[FeatureDrift]) -> None:
        """Publish the latest drift_report (replacing the previous one as a whole)."""
        if self.features:
            dropped = [
                d.feature
                for d in report
                if d.kind != "prediction" and d.feature not in self.features
            ]
            if dropped:
                log.warning("drift of features outside the profile is not exported: %s", dropped)
                report = [d for d in report if d.feature not in dropped]
        self._drift.update(report)

    def set_shadow(self, agreement: float, mean_abs_diff: float, n: int) -> None:
        """Shadow-model comparison of the last batch; n records were scored by both models."""
        self.shadow_agreement.set(agreement)
        self.shadow_mean_abs_diff.set(mean_abs_diff)
        self.shadow_records.inc(n)


def serve(metrics: ScorerMetrics, addr: str = "127.0.0.1", port: int = 0) -> tuple[WSGIServer, int]:
    """Serve /metrics in a daemon thread; returns the server and the port actually bound."""
    try:
        server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    except OSError as exc:
        msg = (
            f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}; "
            "choose another --metrics-port (0: any free port)"
        )
        raise MetricsError(msg) from exc
    return server, int(server.server_port)
