"""The streaming scorer: a Structured Streaming query from the input topic to scores and DLQ."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from models.registry import Registry
from scorestream.errors import ConfigError, ScorestreamError
from scorestream.kafka import KafkaSettings, ensure_topics
from streaming.model_holder import ModelHolder
from streaming.scoring import Topics, score_records, to_kafka
from streaming.validate import REASON, ValidationSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScorerSettings:
    """Everything the scorer needs besides Kafka and Spark connection settings."""

    input_topic: str = "features"
    output_topic: str = "scores"
    dead_letter_topic: str = ""
    registry: Path = Path(".scorestream/registry")
    model: str = "champion"
    checkpoint: Path | None = None
    trigger_interval: str = ""
    max_offsets_per_trigger: int | None = None
    min_partitions: int | None = None
    starting_offsets: str = "earliest"
    fail_on_data_loss: bool = True
    create_topics: bool = True
    topic_partitions: int = 2
    validation: ValidationSettings = field(default_factory=ValidationSettings)

    @property
    def topics(self) -> Topics:
        return Topics(
            output=self.output_topic,
            dead_letter=self.dead_letter_topic or f"{self.input_topic}.dlq",
        )

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoint or Path(".scorestream/checkpoints") / (
            f"{self.input_topic}--{self.output_topic}"
        )


class StopRequested(ScorestreamError):
    """Raised inside a batch that starts after a stop was asked for."""


@dataclass
class BatchStats:
    """Counts of one micro-batch."""

    batch_id: int
    records_in: int
    scored: int
    dead_lettered: dict[str, int]
    duration_s: float
    model_version: int


@dataclass
class Totals:
    """Running totals since the scorer started (what the demo and tests read)."""

    batches: int = 0
    records_in: int = 0
    scored: int = 0
    dead_lettered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stats: BatchStats) -> None:
        with self.lock:
            self.batches += 1
            self.records_in += stats.records_in
            self.scored += stats.scored
            self.dead_lettered += sum(stats.dead_lettered.values())


class BatchListener(Protocol):
    """Called once per written micro-batch (monitoring plugs in here).

    `scored` is the batch after decoding, validation and scoring, cached while listeners run:
    typed feature columns, `_reason` (null for scored rows), `score`, `prediction`,
    `model_version`. A listener must not fail the batch: exceptions are logged and counted.
    """

    def on_batch(self, scored: DataFrame, stats: BatchStats) -> None: ...


class Scorer:
    """Starts, runs and stops the scoring query."""

    def __init__(
        self,
        spark: SparkSession,
        kafka: KafkaSettings,
        settings: ScorerSettings,
        listeners: Sequence[BatchListener] = (),
    ) -> None:
        self.spark = spark
        self.listeners = tuple(listeners)
        self.listener_failures = 0
        self.kafka = kafka
        self.settings = settings
        self.registry = Registry(settings.registry)
        self.holder = ModelHolder(self.registry, settings.model)
        self.totals = Totals()
        self.last_batch: BatchStats | None = None
        self.query: StreamingQuery | None = None
        # Held while a batch runs, so a stop waits for the batch instead of interrupting it.
        self._batch_lock = threading.Lock()
        self._stopping = threading.Event()

    def _source(self) -> DataFrame:
        s = self.settings
        reader = (
            self.spark.readStream.format("kafka")
            .options(**self.kafka.spark_options())
            .option("subscribe", s.input_topic)
            .option("startingOffsets", s.starting_offsets)
            .option("failOnDataLoss", str(s.fail_on_data_loss).lower())
        )
        if s.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(s.max_offsets_per_trigger))
        if s.min_partitions:
            reader = reader.option("minPartitions", str(s.min_partitions))
        return reader.load()

    def _process(self, batch: DataFrame, batch_id: int) -> None:
        # Never block here while a stop holds the lock: the stop waits for this thread.
        while not self._batch_lock.acquire(timeout=0.05):
            if self._stopping.is_set():
                break
        else:
            try:
                if not self._stopping.is_set():
                    self._process_batch(batch, batch_id)
                    return
            finally:
                self._batch_lock.release()
        # Not committed: the batch is replayed from the checkpoint on the next start.
        msg = f"scorer stopping; batch {batch_id} left for the next run"
        raise StopRequested(msg)

    def _process_batch(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        started = time.monotonic()
        if batch.rdd.getNumPartitions() == 0:
            # No offsets in this batch: nothing to write, and an observation would never fire.
            return
        self.holder.refresh()
        entry, model = self.holder.entry, self.holder.model
        spec = self.holder.spec
        scored = score_records(batch, model, entry.version, spec, self.settings.validation)
        # Cached so the write, the counts and the listeners read one scoring of the batch,
        # not Kafka and the model again.
        scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            (
                to_kafka(scored, spec, self.settings.topics)
                .select("topic", "key", "value", "headers")
                .write.format("kafka")
                .options(**self.kafka.spark_options())
                .save()
            )
            by_reason = {
                r[REASON]: int(r["n"])
                for r in scored.groupBy(REASON).agg(F.count(F.lit(1)).alias("n")).collect()
            }
            dead = {reason: n for reason, n in by_reason.items() if reason is not None}
            stats = BatchStats(
                batch_id=batch_id,
                records_in=sum(by_reason.values()),
                scored=by_reason.get(None, 0),
                dead_lettered=dead,
                duration_s=time.monotonic() - started,
                model_version=entry.version,
            )
            for listener in self.listeners:
                try:
                    listener.on_batch(scored, stats)
                except Exception:
                    self.listener_failures += 1
                    log.exception("batch listener %r failed on batch %d", listener, batch_id)
        finally:
            scored.unpersist()
        self.totals.add(stats)
        self.last_batch = stats
        log.info(
            "batch %d: %d in, %d scored, %s dead-lettered, %.3f s, model v%d",
            batch_id,
            stats.records_in,
            stats.scored,
            stats.dead_lettered or 0,
            stats.duration_s,
            stats.model_version,
        )

    def start(self) -> StreamingQuery:
        """Create missing topics, start the query, return it (it runs in the background)."""
        s = self.settings
        if s.create_topics:
            ensure_topics(self.kafka, [s.input_topic], partitions=s.topic_partitions)
            ensure_topics(
                self.kafka, [s.output_topic, s.topics.dead_letter], partitions=s.topic_partitions
            )
        writer = (
            self._source()
            .writeStream.foreachBatch(self._process)
            .option("checkpointLocation", str(s.checkpoint_dir))
            .queryName(f"scorestream:{s.input_topic}->{s.output_topic}")
        )
        if s.trigger_interval:
            writer = writer.trigger(processingTime=s.trigger_interval)
        self.query = writer.start()
        return self.query

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Wait until the query has initialised its source (it then waits for data)."""
        deadline = time.monotonic() + timeout_s
        while self.query is not None and time.monotonic() < deadline:
            self.raise_if_failed()
            status = self.query.status
            if status["message"] == "Waiting for data to arrive" or self.query.lastProgress:
                return
            time.sleep(0.1)  # polling a status with a deadline, not waiting blindly
        msg = f"the scoring query did not start within {timeout_s:.0f} s"
        raise ScorestreamError(msg)

    def stop(self, timeout_s: float = 300.0) -> None:
        """Let the running batch finish, then stop the query (what SIGTERM and Ctrl-C do)."""
        self._stopping.set()
        if self.query is None or not self.query.isActive:
            return
        got = self._batch_lock.acquire(timeout=timeout_s)
        try:
            self.query.stop()
        finally:
            if got:
                self._batch_lock.release()

    def raise_if_failed(self) -> None:
        if self._stopping.is_set():
            return
        if self.query is not None and self.query.exception() is not None:
            exc = self.query.exception()
            first = str(exc).strip().splitlines()[0] if exc is not None else "unknown"
            msg = f"the scoring query failed: {first}"
            raise ScorestreamError(msg)


def validate_settings(settings: ScorerSettings) -> None:
    if settings.input_topic in (settings.output_topic, settings.topics.dead_letter):
        msg = (
            f"input topic {settings.input_topic!r} must differ from the output and "
            "dead-letter topics"
        )
        raise ConfigError(msg)
