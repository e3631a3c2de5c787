"""A label-less Prometheus histogram that takes a whole batch of observations in one numpy call.

prometheus_client's Histogram.observe costs a lock and a Python loop per value; a scorer that
reports the latency of every record of a 100k-row batch needs bucketing in numpy instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from scorestream.monitoring.errors import MetricsError


class BulkHistogram(Collector):
    """Cumulative `le` buckets, `_sum` and `_count` of every value passed to observe_many."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        bounds = np.asarray(buckets, dtype=np.float64)
        if bounds.ndim != 1 or bounds.size == 0 or np.any(np.diff(bounds) <= 0):
            msg = f"histogram buckets must be strictly increasing, got {list(buckets)!r}"
            raise MetricsError(msg)
        if not np.isposinf(bounds[-1]):
            bounds = np.append(bounds, np.inf)
        self.name = name
        self.documentation = documentation
        self._bounds = bounds
        self._counts = np.zeros(bounds.size, dtype=np.int64)  # per bucket, not cumulative
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: npt.ArrayLike) -> None:
        """Count each value in the first bucket whose upper bound is >= it; NaNs are ignored."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        arr = arr[~np.isnan(arr)]
        per_bucket = np.bincount(
            np.searchsorted(self._bounds, arr, side="left"), minlength=self._bounds.size
        )
        with self._lock:
            self._counts += per_bucket
            self._sum += float(arr.sum())

    @property
    def bounds(self) -> tuple[float, ...]:
        """Upper bounds of the buckets, the last one +Inf."""
        return tuple(float(b) for b in self._bounds)

    def observe_counts(self, per_bucket: npt.ArrayLike, total: float) -> None:
        """Add counts already bucketed elsewhere (e.g. in Spark), one per bound, and their sum.

        per_bucket[i] counts the values v with bounds[i-1] < v <= bounds[i]: the bucket
        observe_many would have put them in.
        """
        counts = np.asarray(per_bucket)
        if (
            counts.shape != self._counts.shape
            or counts.dtype.kind not in "iu"
            or np.any(counts < 0)
            or not np.isfinite(total)
        ):
            msg = (
                f"bucket counts must be {self._counts.size} non-negative integers and a finite "
                f"sum, got {counts.tolist()!r} and {total!r}"
            )
            raise MetricsError(msg)
        with self._lock:
            self._counts += counts.astype(np.int64)
            self._sum += float(total)

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            cumulative = np.cumsum(self._counts)
            total = self._sum
        buckets = [
            (floatToGoString(b), float(c)) for b, c in zip(self._bounds, cumulative, strict=True)
        ]
        return [
            HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)
        ]
