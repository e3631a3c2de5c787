"""The drift alert as a retraining trigger: read a scorer's drift gauges from its /metrics page.

The scorer exports PSI per feature (`scorestream_feature_psi{feature,kind}`) and for its score
(`scorestream_prediction_psi`) over a sliding window of `scorestream_drift_window_rows` rows,
against the serving version's training profile, and names that version in
`scorestream_model_info{version,alias}`. The trigger fires when the worst PSI reaches a threshold
over a window of at least `min_window` rows: below that a PSI says little (with 10 bins a
100-row window of undrifted data exceeds 0.1 about 40% of the time; see docs/monitoring.md).
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from scorestream.monitoring.errors import MetricsError

# The gauge names ScorerMetrics exports (tests/unit/test_drift_trigger.py reads them from it).
FEATURE_PSI = "scorestream_feature_psi"
PREDICTION_PSI = "scorestream_prediction_psi"
WINDOW_ROWS = "scorestream_drift_window_rows"
MODEL_INFO = "scorestream_model_info"
SCORE = "score"  # the name the score's PSI goes by in a reading


@dataclass(frozen=True)
class DriftTrigger:
    """Where the scorer's metrics are and when its drift counts as an alert."""

    url: str
    psi_threshold: float = 0.25  # the usual "act" band
    min_window: int = 1_000
    include_prediction: bool = True  # the score's PSI counts too
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            msg = f"drift trigger URL {self.url!r} must be http(s)://host:port/metrics"
            raise MetricsError(msg)
        if not (self.psi_threshold > 0 and math.isfinite(self.psi_threshold)):
            msg = f"PSI threshold must be a finite number > 0, got {self.psi_threshold}"
            raise MetricsError(msg)
        if self.min_window < 1:
            msg = f"the minimum drift window must be at least 1 row, got {self.min_window}"
            raise MetricsError(msg)


@dataclass(frozen=True)
class DriftReading:
    """The drift gauges of one scrape."""

    window_rows: int
    psi: dict[str, float] = field(default_factory=dict)  # feature (or SCORE) -> PSI
    serving_version: int | None = None

    def worst(self, include_prediction: bool = True) -> tuple[str, float] | None:
        values = {k: v for k, v in self.psi.items() if include_prediction or k != SCORE}
        if not values:
            return None
        name = max(values, key=lambda k: values[k])
        return name, values[name]


def parse_metrics(text: str) -> DriftReading:
    """The drift gauges of a Prometheus text page (absent gauges: an empty reading)."""
    rows = 0
    psi: dict[str, float] = {}
    version: int | None = None
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError) as exc:
        msg = f"the metrics page is not Prometheus text format: {exc}"
        raise MetricsError(msg) from exc
    for family in families:
        for sample in family.samples:
            if math.isnan(sample.value):
                continue
            if sample.name == WINDOW_ROWS:
                rows = int(sample.value)
            elif sample.name == FEATURE_PSI:
                psi[sample.labels.get("feature", "?")] = float(sample.value)
            elif sample.name == PREDICTION_PSI:
                psi[SCORE] = float(sample.value)
            elif sample.name == MODEL_INFO and sample.value == 1:
                digits = str(sample.labels.get("version", "")).removeprefix("v")
                version = int(digits) if digits.isdigit() else None
    return DriftReading(window_rows=rows, psi=psi, serving_version=version)


def scrape(trigger: DriftTrigger) -> DriftReading:
    """GET the metrics page and parse it; an unreachable scorer is a MetricsError naming it."""
    try:
        with urllib.request.urlopen(trigger.url, timeout=trigger.timeout_s) as response:  # noqa: S310 (http(s) checked above)
            text = response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        msg = f"cannot read the scorer's metrics at {trigger.url}: {reason}"
        raise MetricsError(msg) from exc
    return parse_metrics(text)


def alert(reading: DriftReading, trigger: DriftTrigger) -> str | None:
    """Why retraining is due (the worst PSI, its window), or None while drift is not an alert."""
    worst = reading.worst(trigger.include_prediction)
    if worst is None or reading.window_rows < trigger.min_window:
        return None
    name, value = worst
    if value < trigger.psi_threshold:
        return None
    model = f"v{reading.serving_version}" if reading.serving_version is not None else "?"
    return (
        f"drift: PSI of {name} {value:.4f} >= {trigger.psi_threshold:g} over "
        f"{reading.window_rows} scored events of model {model}"
    )
