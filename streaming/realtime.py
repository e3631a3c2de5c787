"""Real-time mode: the scoring pipeline as one long-running Kafka -> Kafka query (Spark 4.1+).

Spark's real-time mode runs one long-lived task per input partition and hands each record to
the next operator as it arrives, instead of planning a micro-batch every few hundred
milliseconds. It accepts only allowlisted plan nodes (projections, filters, unions, the Kafka
source and sink), so the whole pipeline is expressed with JVM column expressions: decoding and
validation (streaming/validate.py), the PipelineModel's stages, the score record and the
dead-letter split, which is a `topic` column choosing the output or the dead-letter topic
(streaming/scoring.py `kafka_columns`). There is no foreachBatch and no Python code per record.

pyspark 4.1.1's `DataStreamWriter.trigger()` has no `realTime=` keyword; the JVM's
`org.apache.spark.sql.streaming.Trigger.RealTime(String)` is there and is applied through py4j.

What the mode gives up (see docs/operations.md): the model is loaded once at start (no hot swap:
restart to pick up a promotion), no exactly-once transactions (the Kafka sink is at-least-once),
no per-batch listeners (drift, shadow scoring, feedback), no `minPartitions`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from scorestream.errors import ConfigError
from scorestream.kafka import KafkaSettings, topic_partitions
from scorestream.models.parity import choose_route
from scorestream.models.source import ModelEntry, open_source
from scorestream.streaming import preflight
from scorestream.streaming.avro_input import prepare_decoding
from scorestream.streaming.scoring import ScoringPlan, Topics
from scorestream.streaming.source import kafka_source

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

    from scorestream.streaming.settings import ScorerSettings

log = logging.getLogger(__name__)

# Spark refuses a shorter checkpoint interval in real-time mode.
MIN_CHECKPOINT_S = 5.0
TRIGGER_NAMES = ("microbatch", "realtime")


@dataclass(frozen=True)
class RealtimeSettings:
    """Real-time mode: how often the long-running batch is checkpointed (not a latency)."""

    checkpoint_interval: str = "5 seconds"


def interval_seconds(text: str) -> float:
    """Seconds of a Spark interval such as '5 seconds', '1 minute', '500 ms'."""
    units = {
        "ms": 0.001,
        "millisecond": 0.001,
        "milliseconds": 0.001,
        "s": 1.0,
        "sec": 1.0,
        "second": 1.0,
        "seconds": 1.0,
        "min": 60.0,
        "minute": 60.0,
        "minutes": 60.0,
        "h": 3600.0,
        "hour": 3600.0,
        "hours": 3600.0,
    }
    parts = text.strip().lower().split()
    if len(parts) == 1:
        number = parts[0].rstrip("abcdefghijklmnopqrstuvwxyz")
        parts = [number, parts[0][len(number) :] or "s"]
    try:
        value = float(parts[0])
        factor = units[parts[1]]
    except (IndexError, KeyError, ValueError) as exc:
        msg = (
            f"real-time checkpoint interval {text!r} is not valid; expected a duration such "
            "as '5 seconds' or '1 minute'"
        )
        raise ConfigError(msg) from exc
    if len(parts) != 2:
        msg = f"real-time checkpoint interval {text!r} is not valid; expected '<number> <unit>'"
        raise ConfigError(msg)
    return value * factor


def check_settings(settings: ScorerSettings, realtime: RealtimeSettings) -> None:
    """Refuse what real-time mode cannot do, naming the setting."""
    seconds = interval_seconds(realtime.checkpoint_interval)
    if seconds < MIN_CHECKPOINT_S:
        msg = (
            f"real-time checkpoint interval {realtime.checkpoint_interval!r} is "
            f"{seconds:g} s; Spark needs at least {MIN_CHECKPOINT_S:g} s"
        )
        raise ConfigError(msg)
    if settings.exactly_once:
        msg = "--exactly-once needs micro-batch mode (foreachBatch); real-time mode has none"
        raise ConfigError(msg)
    if settings.min_partitions:
        msg = "--min-partitions is not supported in real-time mode (one task per partition)"
        raise ConfigError(msg)
    if settings.input_format.registry is not None or settings.output_format.registry is not None:
        msg = (
            "--schema-registry needs micro-batch mode: real-time mode plans its query once and "
            "cannot learn schema ids that appear later"
        )
        raise ConfigError(msg)
    if settings.input_format.kind != "json" and settings.input_format.schema_dir is not None:
        msg = (
            "--schema-dir is re-read per micro-batch; real-time mode reads writer schemas once: "
            "use --writer-schema"
        )
        raise ConfigError(msg)


def realtime_trigger(spark: SparkSession, interval: str) -> object:
    """The JVM `Trigger.RealTime(interval)` (pyspark 4.1.1 has no Python keyword for it)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return jvm.org.apache.spark.sql.streaming.Trigger.RealTime(interval)


def apply_trigger(writer: DataStreamWriter, spark: SparkSession, interval: str) -> None:
    """Set the real-time trigger on a DataStreamWriter, in place."""
    writer._jwrite = writer._jwrite.trigger(realtime_trigger(spark, interval))


MONITOR_SUFFIX = ".monitor"


def monitor_settings(settings: ScorerSettings, interval: str) -> ScorerSettings:
    """The micro-batch query that gives a real-time scorer its metrics.

    It reads the same input with the same validation and model on a slower trigger, writes
    nothing, and feeds the batch listeners (ScorerMonitor): counters by reason, latency and
    drift, with the same names as the micro-batch scorer's. It has its own checkpoint beside
    the scorer's, so it never touches the real-time query's offsets. The real-time path itself
    carries no monitoring work; the cost is one more task slot (`monitor_slots`) and the
    monitor's share of the CPU, measured in BENCHMARKS.md.
    """
    checkpoint = settings.checkpoint_dir
    return replace(
        settings,
        publish=False,
        exactly_once=False,
        create_topics=False,
        trigger_interval=interval,
        checkpoint=checkpoint.with_name(checkpoint.name + MONITOR_SUFFIX),
    )


def monitor_slots(partitions: int) -> int:
    """Task slots a monitored real-time scorer needs: one long task per input partition, and
    one for the monitoring query's short micro-batch tasks."""
    return partitions + 1


class RealtimeScorer:
    """Starts and stops the real-time scoring query (the model is fixed for its lifetime)."""

    def __init__(
        self,
        spark: SparkSession,
        kafka: KafkaSettings,
        settings: ScorerSettings,
        realtime: RealtimeSettings | None = None,
    ) -> None:
        self.spark = spark
        self.kafka = kafka
        self.settings = settings
        self.realtime = realtime or RealtimeSettings()
        check_settings(settings, self.realtime)
        self.registry, ref = open_source(settings.registry, settings.model, settings.mlflow_uri)
        self.entry: ModelEntry
        self.model: PipelineModel
        self.entry, self.model = self.registry.load(ref)
        e = self.entry
        self.route = choose_route(spark, self.model, e.spec, e.version, settings.compiled)
        self.query: StreamingQuery | None = None
        # Where records go and the largest each takes, and the sink's max.request.size
        # (read by preflight).
        self.topics: Topics = settings.topics
        self.max_request_bytes: int | None = None

    @property
    def version(self) -> int:
        return self.entry.version

    def plan(self, raw: DataFrame) -> DataFrame:
        """Kafka source rows -> Kafka sink rows (topic, key, value, headers): JVM only."""
        s = self.settings
        writers = None
        if s.input_format.kind != "json":
            from scorestream.streaming.avro_input import load_writer_schemas

            writers = load_writer_schemas(self.spark, s.input_format)
        e, fmt = self.entry, s.input_format
        compiled = self.route.compiled
        plan = ScoringPlan(raw, self.model, e.version, e.spec, s.validation, fmt, writers, compiled)
        return plan.kafka(plan.scored(raw), self.topics, s.output_format)

    def preflight(self) -> None:
        s = self.settings
        preflight.check_broker(self.kafka, s.startup_timeout_s)
        bound = {**s.bound(), "trigger": "realtime"}  # whatever the interval text says
        preflight.check_checkpoint(s.checkpoint_dir, bound)
        preflight.check_topics(
            self.kafka,
            s.input_topic,
            [s.output_topic, s.topics.dead_letter],
            s.create_topics,
            s.topic_partitions,
        )
        self.topics, self.max_request_bytes = preflight.sink_limits(self.kafka, s.topics)
        partitions = topic_partitions(self.kafka, s.input_topic)
        cores = self.spark.sparkContext.defaultParallelism
        if partitions > cores:
            msg = (
                f"real-time mode runs one long task per input partition: topic "
                f"{s.input_topic!r} has {partitions} partitions but Spark has {cores} cores; "
                "give Spark at least as many cores (--master local[N]) or use micro-batch mode"
            )
            raise ConfigError(msg)
        # The same Avro guard as the micro-batch scorer: random bytes cannot exhaust the heap.
        prepare_decoding(self.spark, s.input_format, self.entry.spec, s.validation.max_record_bytes)
        preflight.write_manifest(s.checkpoint_dir, bound)

    def writer(self, linger_ms: int = 0) -> DataStreamWriter:
        """The scoring query, Kafka source -> Kafka sink, with no trigger set yet (call after
        preflight, which learns the sink's limits)."""
        s = self.settings
        return (
            self.plan(kafka_source(self.spark, self.kafka, self.settings))
            .writeStream.format("kafka")
            .options(
                **self.kafka.spark_sink_options(
                    linger_ms=linger_ms, max_request_bytes=self.max_request_bytes
                )
            )
            .option("checkpointLocation", str(s.checkpoint_dir))
            .outputMode("update")
            .queryName(f"scorestream-realtime:{s.input_topic}->{s.output_topic}")
        )

    def start(self) -> StreamingQuery:
        s = self.settings
        self.preflight()
        writer = self.writer()
        apply_trigger(writer, self.spark, self.realtime.checkpoint_interval)
        self.query = writer.start()
        log.info(
            "real-time scoring %s -> %s with model v%d (checkpoint every %s)",
            s.input_topic,
            s.output_topic,
            self.entry.version,
            self.realtime.checkpoint_interval,
        )
        return self.query

    def stop(self) -> None:
        if self.query is not None and self.query.isActive:
            self.query.stop()

    def raise_if_failed(self) -> None:
        from scorestream.errors import ScorestreamError

        if self.query is not None and self.query.exception() is not None:
            exc = self.query.exception()
            first = str(exc).strip().splitlines()[0] if exc is not None else "unknown"
            msg = f"the real-time scoring query failed: {first}"
            raise ScorestreamError(msg)
