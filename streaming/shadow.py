"""Challenger shadow scoring: a BatchListener that scores each batch's good rows with the
registry's `challenger` and publishes both versions' scores to a shadow topic.

It runs after the champion's scores are written, on the cached batch, so the champion's output
is untouched; what it costs is extra time per batch (one more model transform and one Kafka
write of the good rows), measured in docs/operations.md. The challenger is followed like the
champion: the alias is re-read every batch, a version that fails to load or needs a field the
events lack is logged with its path and reason, counted, and not tried again (the same
AliasFollower as the champion's, streaming/model_holder.py, dry run included). The feedback loop
reads the batch's score pairs from here when it listens too (`keep_pairs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ModelError
from scorestream.kafka import KafkaSettings, ensure_topics
from scorestream.models.scoring import score
from scorestream.models.source import ModelSource
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.streaming.listeners import BatchStats
from scorestream.streaming.model_holder import AliasFollower, Probe
from scorestream.streaming.validate import REASON

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

    from scorestream.models.source import ModelEntry
    from scorestream.streaming.listeners import Listened

log = logging.getLogger(__name__)

# One shadow comparison as collected for the feedback loop:
# (event_id, champion version, champion score, challenger version or None, challenger score).
Compared = tuple[str, int, float, int | None, float | None]


@dataclass(frozen=True)
class ShadowSettings:
    """Where shadow scores go and which alias is the challenger."""

    topic: str
    alias: str = "challenger"
    topic_partitions: int = 2


@dataclass(frozen=True)
class Agreement:
    """How the challenger compares with the champion on one batch."""

    batch_id: int
    champion_version: int
    challenger_version: int
    records: int
    agreement: float  # share of equal predictions
    mean_abs_diff: float  # mean |challenger score - champion score|


def compare(
    scored: DataFrame, serving: FeatureSpec, challenger: PipelineModel, version: int
) -> DataFrame:
    """Good rows of a scored batch with the challenger's score next to the champion's.

    Columns: event_id, event_time, champion_version, champion_score, champion_prediction,
    challenger_version, challenger_score, challenger_prediction.
    """
    from pyspark.sql import functions as F

    # Only the raw features go in: the champion's stage outputs (features, probability, ...)
    # would clash with the challenger's.
    inputs = scored.where(F.col(REASON).isNull()).select(
        F.col(serving.event_id),
        F.col(serving.event_time),
        *[F.col(n) for n in serving.feature_names],
        F.col("model_version").alias("champion_version"),
        F.col("score").alias("champion_score"),
        F.col("prediction").alias("champion_prediction"),
    )
    out = score(inputs, challenger, version)
    return out.select(
        F.col(serving.event_id).alias("event_id"),
        F.col(serving.event_time).alias("event_time"),
        F.col("champion_version").cast("int"),
        F.col("champion_score").cast("double"),
        F.col("champion_prediction").cast("double"),
        F.col("model_version").alias("challenger_version"),
        F.col("score").alias("challenger_score"),
        F.col("prediction").alias("challenger_prediction"),
    )


def to_shadow_records(compared: DataFrame, topic: str) -> DataFrame:
    """Kafka sink rows of the shadow topic: JSON of both versions' scores, keyed by event id."""
    from pyspark.sql import functions as F

    body = F.to_json(
        F.struct(*[F.col(c) for c in compared.columns]),
        {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"},
    )
    return compared.select(
        F.lit(topic).alias("topic"),
        F.col("event_id").cast("binary").alias("key"),
        body.cast("binary").alias("value"),
    )


DRY_RUN_ROWS = 200  # rows of the current batch a new challenger must score before it shadows


class ShadowScorer:
    """BatchListener: challenger scores of every batch to `<output topic>.shadow`, agreement
    figures to the metrics, and (`keep_pairs`, for the feedback loop) the batch's score pairs."""

    name = "shadow"

    def __init__(
        self,
        kafka: KafkaSettings,
        registry: ModelSource,
        settings: ShadowSettings,
        metrics: ScorerMetrics | None = None,
        keep_pairs: bool = False,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.metrics = metrics
        self.keep_pairs = keep_pairs
        self._pairs: tuple[int, list[Compared]] | None = None
        self.load_failures = 0
        self.records = 0  # compared records since start, and their running sums:
        self.equal_total = 0
        self.abs_diff_total = 0.0
        self.seconds = 0.0  # wall time spent shadow scoring (it lengthens the batches)
        self.batches = 0
        self.last: Agreement | None = None
        self.holder = AliasFollower(
            registry, settings.alias, role="challenger", optional=True, on_failure=self._failed
        )
        self._topic_ready = False
        self._spec: Callable[[], FeatureSpec] | None = None

    def attach(self, scorer: Listened) -> None:
        """Read the event fields from the scorer's model holder (the spec the batch is decoded
        with: the challenger may read only those)."""
        holder = scorer.holder
        self._spec = lambda: holder.spec

    def _failed(self, _reason: str) -> None:
        self.load_failures += 1
        if self.metrics is not None:
            self.metrics.model_load_failed()

    def _ensure_topic(self) -> None:
        if not self._topic_ready:
            s = self.settings
            ensure_topics(self.kafka, [s.topic], partitions=s.topic_partitions)
            self._topic_ready = True

    def take_pairs(self, batch_id: int) -> list[Compared] | None:
        """The (champion, challenger) score pairs of batch `batch_id`, once; None when this
        batch was not shadow-scored (no challenger, or it failed)."""
        kept, self._pairs = self._pairs, None
        if kept is None or kept[0] != batch_id:
            return None
        return kept[1]

    def on_batch(self, scored: DataFrame, stats: BatchStats) -> None:
        started = time.monotonic()
        self._pairs = None
        try:
            self._on_batch(scored, stats)
        finally:
            self.seconds += time.monotonic() - started

    def _on_batch(self, scored: DataFrame, stats: BatchStats) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        if self._spec is None:
            msg = "ShadowScorer.attach(scorer) must be called before the scorer starts"
            raise ModelError(msg)
        spec = self._spec()
        if stats.scored:
            self.holder.follow(spec, self._probe(scored, spec))
        version = self.holder.version
        if version is None or version == stats.model_version or not stats.scored:
            return
        assert self.holder.current is not None
        compared = compare(scored, spec, self.holder.current.model, version)
        compared = compared.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            self._ensure_topic()
            to_shadow_records(compared, self.settings.topic).write.format("kafka").options(
                **self.kafka.spark_sink_options()
            ).save()
            row = compared.agg(
                F.count(F.lit(1)).alias("n"),
                F.sum(
                    (F.col("champion_prediction") == F.col("challenger_prediction")).cast("int")
                ).alias("equal"),
                F.sum(F.abs(F.col("challenger_score") - F.col("champion_score"))).alias("diff"),
            ).first()
            assert row is not None
            n = int(row["n"])
            if n and self.keep_pairs:
                pairs: list[Compared] = [
                    (
                        r["event_id"],
                        int(r["champion_version"]),
                        float(r["champion_score"]),
                        int(r["challenger_version"]),
                        float(r["challenger_score"]),
                    )
                    for r in compared.select(
                        "event_id",
                        "champion_version",
                        "champion_score",
                        "challenger_version",
                        "challenger_score",
                    ).toLocalIterator()
                ]
                self._pairs = (stats.batch_id, pairs)
        finally:
            compared.unpersist()
        if not n:
            return
        self.records += n
        self.batches += 1
        self.equal_total += int(row["equal"])
        self.abs_diff_total += float(row["diff"])
        self.last = Agreement(
            batch_id=stats.batch_id,
            champion_version=stats.model_version,
            challenger_version=version,
            records=n,
            agreement=int(row["equal"]) / n,
            mean_abs_diff=float(row["diff"]) / n,
        )
        if self.metrics is not None:
            self.metrics.set_shadow(self.last.agreement, self.last.mean_abs_diff, n)
        log.info(
            "shadow batch %d: v%d vs v%d on %d records: agreement %.4f, mean |diff| %.4f",
            stats.batch_id,
            stats.model_version,
            version,
            n,
            self.last.agreement,
            self.last.mean_abs_diff,
        )

    @staticmethod
    def _probe(scored: DataFrame, spec: FeatureSpec) -> Probe:
        """A dry run of a new challenger on the first rows of the batch it would shadow."""

        def dry_run(entry: ModelEntry, model: PipelineModel) -> None:
            sample = scored.limit(DRY_RUN_ROWS)
            compare(sample, spec, model, entry.version).select("challenger_score").collect()

        return dry_run
