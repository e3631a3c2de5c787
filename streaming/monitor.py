"""Live scorer monitoring: a BatchListener feeding drift and operational metrics to Prometheus.

Per micro-batch, the monitor's tallies (`batch_tallies`) join the scorer's own counts in one
Spark job over the cached scored rows: exact integer counts per reference bin of every feature
and of the score, plus the end-to-end latency histogram's bucket counts and sum; no row is
collected. The counts merge into a sliding DriftWindow whose drift report is exported with the
window's size next to it.

Input rate and offsets behind latest come from Spark's query progress through a
StreamingQueryListener rather than from polling `query.lastProgress`: the listener sees every
progress report once, when it is made, with no extra thread, no polling interval to choose and no
report missed between two polls; it also hears `onQueryIdle`, the moment the input is drained.
Listeners are session-wide, so it ignores progress of other queries of the same SparkSession.

One module (about 300 lines): one listener, whose StreamingQueryListener is the other half of
its input (the query's progress), registered and filtered by it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from scorestream.errors import ScorestreamError
from scorestream.models.source import ModelSource
from scorestream.monitoring.counting import BinCounter, bucket_index
from scorestream.monitoring.drift import DriftWindow, ReferenceProfile, drift_report
from scorestream.monitoring.metrics import ScorerMetrics, serve
from scorestream.monitoring.settings import MonitorSettings
from scorestream.streaming.listeners import BatchStats
from scorestream.streaming.validate import REASON
from scorestream.tally import Tally

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

    from scorestream.streaming.listeners import Listened

log = logging.getLogger(__name__)

_LATENCY = "__latency_s"


def offsets_behind_latest(source: Mapping[str, Any]) -> float | None:
    """Records between a Kafka source's end offsets and the latest offsets, over all partitions.

    Spark reports both offsets as JSON ({topic: {partition: offset}}); their difference summed
    over partitions is the lag. Without them, Spark's own `maxOffsetsBehindLatest` (the worst
    partition) is the fallback; None when neither is there.
    """

    def parse(raw: Any) -> dict[str, Any]:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                return {}
        return raw if isinstance(raw, dict) else {}

    end, latest = parse(source.get("endOffset")), parse(source.get("latestOffset"))
    if latest and end:
        behind = 0
        for topic, partitions in latest.items():
            done = end.get(topic, {})
            for partition, offset in partitions.items():
                behind += max(int(offset) - int(done.get(partition, 0)), 0)
        return float(behind)
    metric = (source.get("metrics") or {}).get("maxOffsetsBehindLatest")
    return None if metric is None else float(metric)


def _progress_listener(
    owner: ScorerMonitor,
) -> StreamingQueryListener:
    from pyspark.sql.streaming import StreamingQueryListener

    class ProgressListener(StreamingQueryListener):
        """Input rate and lag of the scorer's query from every progress report."""

        def onQueryStarted(self, event: Any) -> None:
            pass

        def onQueryProgress(self, event: Any) -> None:
            progress = event.progress
            if not owner.is_mine(progress.id):
                return
            lags = [offsets_behind_latest(dict(s)) for s in progress.sources]
            known = [lag for lag in lags if lag is not None]
            owner.metrics.set_progress(
                float(progress.inputRowsPerSecond or 0.0), sum(known) if known else None
            )

        def onQueryIdle(self, event: Any) -> None:
            # Spark reports an idle query only once it has read everything: nothing behind.
            if owner.is_mine(event.id):
                owner.metrics.set_progress(0.0, 0.0)

        def onQueryTerminated(self, event: Any) -> None:
            pass

    return ProgressListener()


class ScorerMonitor:
    """A BatchListener that exports drift and operational metrics of one Scorer.

    Use: ``monitor = ScorerMonitor(spark, settings)``, ``Scorer(..., listeners=[monitor])``,
    ``monitor.attach(scorer)`` (starts the exporter, hooks model swaps and load failures,
    registers the progress listener), then ``monitor.close()`` after the scorer stopped.
    """

    name = "monitor"

    def __init__(
        self,
        spark: SparkSession,
        settings: MonitorSettings,
        metrics: ScorerMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.metrics = metrics if metrics is not None else ScorerMetrics()
        self.clock = clock
        self.port: int | None = None
        self.reference_version: int | None = None
        self.spent_s = 0.0  # wall time spent in on_batch, for overhead measurements
        self.profile: ReferenceProfile | None = None
        self.window: DriftWindow | None = None
        self._counter: BinCounter | None = None
        self._tallies: tuple[int, list[Column], dict[str, Tally]] | None = None
        self._registry: ModelSource | None = None
        self._scorer: Listened | None = None
        self._event_time = "event_time"
        self._server: WSGIServer | None = None
        self._listener: StreamingQueryListener | None = None
        self._query_id: str | None = None
        self._progress_of: Callable[[], StreamingQuery | None] | None = None
        self._lock = threading.Lock()

    # -- wiring ------------------------------------------------------------------------------
    def attach(
        self, scorer: Listened, progress_of: Callable[[], StreamingQuery | None] | None = None
    ) -> None:
        """Start the exporter and hook into the scorer's model holder and query progress.

        `progress_of` names another query whose progress (input rate, lag) the gauges show:
        the real-time query, when `scorer` is the micro-batch query that monitors it.
        """
        self._scorer = scorer
        self._progress_of = progress_of
        self._registry = scorer.registry
        holder = scorer.holder
        ref = holder.ref

        def on_swap(version: int) -> None:
            self.metrics.set_model(version, ref)

        def on_failure(reason: str) -> None:
            self.metrics.model_load_failed()

        holder.on_swap = on_swap
        holder.on_failure = on_failure
        scorer.on_listener_failure = self.metrics.listener_failed
        if holder.fallback is not None:  # the champion was refused at start-up
            self.metrics.model_load_failed()
        self.metrics.set_model(holder.version, ref)
        self._load_reference(holder.version)
        if self._server is None:
            s = self.settings
            self._server, self.port = serve(self.metrics, s.metrics_address, s.metrics_port)
        if self._listener is None:
            self._listener = _progress_listener(self)
            self.spark.streams.addListener(self._listener)

    @property
    def url(self) -> str:
        """Where Prometheus scrapes this scorer (after attach)."""
        return f"http://{self.settings.metrics_address}:{self.port}/metrics"

    def is_mine(self, query_id: object) -> bool:
        if self._query_id is None:
            if self._progress_of is not None:
                query = self._progress_of()
            else:
                query = self._scorer.query if self._scorer is not None else None
            if query is None:
                return False
            self._query_id = str(query.id)
        return str(query_id) == self._query_id

    def close(self) -> None:
        """Stop the exporter and remove the progress listener (idempotent)."""
        if self._listener is not None:
            try:
                self.spark.streams.removeListener(self._listener)
            except Exception:  # a stopped SparkSession has no listeners left to remove
                log.debug("progress listener not removed", exc_info=True)
            self._listener = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- reference profile -------------------------------------------------------------------
    def _load_reference(self, version: int) -> None:
        """Drift is measured against the serving version's profile; a new version starts a
        new, empty window (its bins differ)."""
        if self.reference_version == version:
            return
        self.reference_version = version
        self.profile, self._counter, self.window = None, None, None
        self._tallies = None
        self.metrics.set_drift([])
        if self._registry is None:
            return
        entry = self._registry.get(version)
        self._event_time = entry.spec.event_time
        if not self.settings.drift:
            return
        try:
            profile = ReferenceProfile.from_dict(entry.profile())
        except ScorestreamError as exc:
            log.error(
                "model v%d has no usable reference profile (%s): no drift for it", version, exc
            )
            return
        s = self.settings
        self.profile = profile
        self._counter = BinCounter(profile)
        self.window = DriftWindow(
            max_rows=s.window_events, max_age_s=s.window_seconds, sizes=profile.sizes()
        )
        self.metrics.set_features([*profile.numeric, *profile.categorical])
        log.info("drift reference: model v%d (%d training rows)", version, profile.rows)

    # -- per batch ---------------------------------------------------------------------------
    def batch_tallies(self, version: int) -> tuple[list[Column], dict[str, Tally]]:
        """Columns and tallies the scorer evaluates with its own counts (one job a batch): the
        latency histogram's bucket counts and sum and, with a reference, every drift bin count.

        End-to-end latency is event time to the moment the row was scored (its `scored_at`),
        clamped at 0 for events stamped in the future by a skewed clock. Built once per model
        version (each expression is a round trip to the JVM), so the generated code is the same
        for every batch.
        """
        from pyspark.sql import functions as F

        from scorestream.models.scoring import SCORED_AT

        with self._lock:
            if version != self.reference_version:
                self._load_reference(version)
            if self._tallies is not None and self._tallies[0] == version:
                return self._tallies[1], self._tallies[2]
            good = F.col(REASON).isNull()
            event = F.unix_micros(F.col(f"`{self._event_time}`"))
            latency = F.greatest((F.unix_micros(F.col(SCORED_AT)) - event) / F.lit(1e6), F.lit(0.0))
            bucket = bucket_index(F.col(_LATENCY), self._latency_bounds())
            columns = [latency.alias(_LATENCY)]
            tallies = {_LATENCY: Tally(F.when(good, bucket), F.col(_LATENCY))}
            if self._counter is not None:
                columns += self._counter.columns()
                tallies.update(self._counter.tallies(good))
            self._tallies = (version, columns, tallies)
            return columns, tallies

    def _latency_bounds(self) -> tuple[float, ...]:
        return tuple(self.metrics.end_to_end_latency.bounds[:-1])  # the last is +Inf

    def on_batch(self, scored: DataFrame, stats: BatchStats) -> None:
        """Export the batch's counts, latency histogram and drift (from `stats.tallies`)."""
        started = time.monotonic()
        with self._lock:
            try:
                self._read(stats)
            finally:  # the counters move even when the drift or latency part failed
                self.metrics.record_batch(
                    stats.records_in,
                    stats.scored,
                    stats.dead_lettered,
                    stats.duration_s,
                    batch_id=stats.batch_id,
                    completed_at=self.clock(),
                )
                self.spent_s += time.monotonic() - started

    def _read(self, stats: BatchStats) -> None:
        tallied = stats.tallies
        if stats.model_version != self.reference_version or not stats.listener_tallies:
            return  # tallied for another reference, or the tallies failed: counters only
        n_buckets = len(self._latency_bounds()) + 1
        self.metrics.end_to_end_latency.observe_counts(
            tallied.array(_LATENCY, n_buckets), tallied.sum(_LATENCY)
        )
        counter, window = self._counter, self.window
        if counter is not None and window is not None and self.profile is not None:
            batch = counter.read(tallied)
            window.add_batch(self.clock(), batch.rows, batch.counts, batch.missing)
            self.metrics.set_drift(drift_report(self.profile, window))
