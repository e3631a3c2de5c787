"""The micro-batch scorer: a Structured Streaming query from the input topic to scores and DLQ.

The engine of each batch: the model to serve, the scoring plan, the resilient write (isolating
the records that make it fail, retrying what is not in them), exactly-once publishing, and
the query's start and stop. Its settings (streaming/settings.py), what listeners see
(streaming/listeners.py), the counts of a written batch (streaming/accounting.py), the Kafka
source (streaming/source.py), the Spark workarounds (streaming/spark_bugs.py) and the retries
and isolation of a failing write (streaming/resilient.py) live apart; streaming/runner.py runs
it until a signal.

Why this module is longer than the others (about 500 lines): what is left is one class whose
parts share the batch lock, the stop event, the serving model and the query (a stop waits
for the running batch; a batch refuses to start once a stop was asked), so splitting it
further would pass those around instead of hiding them. The next candidates to move out are
the exactly-once publishing (`_unpublished`, `_publish_transaction`) and the plan and writer
schema cache (`_plan`, `_writer_schemas`, `_dry_run`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from scorestream.errors import ScorestreamError
from scorestream.kafka import KafkaSettings
from scorestream.models.source import ModelEntry, open_source
from scorestream.streaming import preflight
from scorestream.streaming.accounting import Accountant
from scorestream.streaming.avro_input import (
    WriterSchemas,
    load_writer_schemas,
    prepare_decoding,
)
from scorestream.streaming.exactly_once import (
    Offsets,
    batch_offsets,
    crash_after,
    query_id,
)
from scorestream.streaming.exactly_once_tasks import SOURCE_COLUMNS, ExecutorSink
from scorestream.streaming.isolate import (
    Coordinate,
    Isolation,
    bisect,
    dead_letters_like,
)
from scorestream.streaming.listeners import BatchListener, BatchStats, Totals
from scorestream.streaming.model_holder import ModelHolder, Probe
from scorestream.streaming.registry_schemas import RegistryWriters, register_score_schema
from scorestream.streaming.resilient import ResilientWrite, StopRequested
from scorestream.streaming.scoring import ScoringPlan, Topics
from scorestream.streaming.settings import ScorerSettings
from scorestream.streaming.source import kafka_source
from scorestream.streaming.spark_bugs import Spark55271Watchdog

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


DRY_RUN_ROWS = 200  # rows of the current batch a new model version must score before it serves


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
        # Counts each written batch and runs the listeners (totals, last_batch, failures).
        self.accounting = Accountant(listeners)
        self.kafka = kafka
        self.settings = settings
        self.registry, ref = open_source(settings.registry, settings.model, settings.mlflow_uri)
        self.holder = ModelHolder(self.registry, ref, compile_mode=settings.compiled)
        self.query: StreamingQuery | None = None
        # Held while a batch runs, so a stop waits for the batch instead of interrupting it.
        self._batch_lock = threading.Lock()
        self._stopping = threading.Event()
        self._sink: ExecutorSink | None = None
        # Exactly-once: the last batch's id and end offsets, the next batch's start offsets.
        self._last_end: tuple[int, Offsets | None] | None = None
        self._watchdog = Spark55271Watchdog(lambda: self.query, self._restart, self._stopping)
        self._writers: WriterSchemas | None = None
        self._registry_writers: RegistryWriters | None = None
        self._output = settings.output_format  # with the registry's id after preflight
        self._scoring: tuple[object, ScoringPlan] | None = None
        # Where records go and the largest each topic takes (read by preflight), and the
        # max.request.size of the scorer's Kafka sink.
        self.topics: Topics = settings.topics
        self.max_request_bytes: int | None = None
        self._resilience = ResilientWrite(
            settings.batch_retries, settings.retry_backoff_s, self._stopping
        )

    @property
    def listeners(self) -> tuple[BatchListener, ...]:
        return self.accounting.listeners

    @property
    def totals(self) -> Totals:
        """Running totals since the start (what the demo and tests read)."""
        return self.accounting.totals

    @property
    def last_batch(self) -> BatchStats | None:
        return self.accounting.last_batch

    @property
    def listener_failures(self) -> int:
        return self.accounting.listener_failures

    @property
    def on_listener_failure(self) -> Callable[[str], None]:
        """Hears the name of every failed listener (or "tallies", "accounting"): the metrics."""
        return self.accounting.on_listener_failure

    @on_listener_failure.setter
    def on_listener_failure(self, hook: Callable[[str], None]) -> None:
        self.accounting.on_listener_failure = hook

    @property
    def isolated(self) -> int:
        """Records dead-lettered as PROCESSING_ERROR since the start."""
        return self._resilience.isolated

    @property
    def batch_retries(self) -> int:
        """Batch attempts retried after a failure not in the data."""
        return self._resilience.retried

    @property
    def restarts(self) -> int:
        """Query restarts after SPARK-55271 (streaming/spark_bugs.py)."""
        return self._watchdog.restarts

    def settle(self, timeout_s: float = 300.0) -> None:
        """Wait until the last written batch is counted and its listeners ran (see
        Accountant.settle)."""
        self.accounting.settle(timeout_s)

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
        started = time.monotonic()
        if batch.rdd.getNumPartitions() == 0:
            return  # no offsets in this batch: nothing to write
        s = self.settings
        end: Offsets | None = None
        if s.exactly_once:
            unpublished, end = self._unpublished(batch, batch_id)
            if unpublished is None:
                # Counted and seen by listeners in the run that committed it.
                self.settle()
                duration = time.monotonic() - started
                version = self.holder.version
                self.accounting.last_batch = BatchStats(batch_id, 0, 0, {}, duration, version, True)
                return
            batch = unpublished
        self.holder.refresh(self._dry_run(batch))
        version = self.holder.entry.version
        plan = self._plan(batch)
        scored, phases = self._write_resilient(batch, batch_id, plan, started, end)
        self.accounting.submit(scored, batch_id, version, time.monotonic() - started, phases)

    def _write_resilient(
        self,
        batch: DataFrame,
        batch_id: int,
        plan: ScoringPlan,
        started: float,
        end: Offsets | None,
    ) -> tuple[DataFrame, dict[str, float]]:
        """Write the batch; when that fails for a reason in its records, isolate them (dead
        letters PROCESSING_ERROR) and write again; any other failure is retried with backoff,
        at most `batch_retries` times, then stops the query (streaming/resilient.py)."""
        return self._resilience.run(
            batch_id,
            lambda isolation: self._write(batch, batch_id, plan, isolation, started, end),
            lambda known: self._isolate(batch, plan, known),
        )

    def _write(
        self,
        batch: DataFrame,
        batch_id: int,
        plan: ScoringPlan,
        isolation: Isolation,
        started: float,
        end: Offsets | None,
    ) -> tuple[DataFrame, dict[str, float]]:
        """Score and publish the batch (the isolated records as dead letters; exactly-once:
        in one transaction with a marker of `end`); return the cached scored rows and the
        phase timings."""
        from pyspark import StorageLevel

        s = self.settings
        # Cached: the write, the count by reason and the listeners read one scoring of the
        # batch, not Kafka and the model again.
        scored = self._scored(batch, plan, isolation).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            out = plan.kafka(scored, self.topics, self._output)
            phases = {"plan": time.monotonic() - started}
            if s.exactly_once:
                self._publish_transaction(scored, plan, batch_id, end, bool(isolation.culprits))
            elif s.publish:
                out.write.format("kafka").options(**self._sink_options()).save()
            phases["write"] = time.monotonic() - started - sum(phases.values())
        except BaseException:
            scored.unpersist()
            raise
        return scored, phases

    def _sink_options(self) -> dict[str, str]:
        return self.kafka.spark_sink_options(max_request_bytes=self.max_request_bytes)

    def _scored(self, batch: DataFrame, plan: ScoringPlan, isolation: Isolation) -> DataFrame:
        """The batch scored and fitted to the topics; isolated records are not scored but
        dead-lettered with their failure."""
        if not isolation.culprits:
            return plan.fit(plan.scored(batch), self.topics, self._output)
        rest = batch.filter(~isolation.condition())
        fitted = plan.fit(plan.scored(rest), self.topics, self._output)
        return fitted.unionByName(dead_letters_like(fitted, batch, isolation))

    def _isolate(
        self, batch: DataFrame, plan: ScoringPlan, known: dict[Coordinate, str]
    ) -> dict[Coordinate, str]:
        """The batch's records that fail scoring or their sink rows (see streaming/isolate.py),
        besides those `known`. The Kafka rows are read once and kept while bisecting."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        raw = batch.persist(StorageLevel.MEMORY_AND_DISK)

        def fails(part: DataFrame) -> BaseException | None:
            try:
                fitted = plan.fit(plan.scored(part), self.topics, self._output)
                # Every column of the scored rows and of their sink rows, into nothing.
                sink = F.struct(*plan.sink_columns(self.topics)).alias("_sink")
                fitted.select(F.col("*"), sink).write.format("noop").mode("overwrite").save()
            except Exception as exc:
                return exc
            return None

        started = time.monotonic()
        try:
            return bisect(raw, fails, known)
        finally:
            raw.unpersist()
            log.info("isolation took %.3f s", time.monotonic() - started)

    def _plan(self, batch: DataFrame) -> ScoringPlan:
        """The scoring plan of the serving model version (and Avro writer schemas), kept
        across batches and rebuilt only when either changes."""
        entry, model = self.holder.entry, self.holder.model
        s = self.settings
        writers = self._writer_schemas(refresh=True, batch=batch)
        key = (entry.version, None if writers is None else writers.key())
        if self._scoring is None or self._scoring[0] != key:
            compiled = self.holder.route.compiled
            plan = ScoringPlan(
                batch,
                model,
                entry.version,
                entry.spec,
                s.validation,
                s.input_format,
                writers,
                compiled,
            )
            self._scoring = (key, plan)
        return self._scoring[1]

    def _writer_schemas(
        self, refresh: bool = False, batch: DataFrame | None = None
    ) -> WriterSchemas | None:
        """The Avro writer schemas (the Confluent schema directory is re-read per batch; a
        Schema Registry is asked for the batch's new ids)."""
        fmt = self.settings.input_format
        if fmt.kind == "json":
            return None
        if fmt.registry is not None:
            if self._registry_writers is None:
                writers = RegistryWriters(self.spark, fmt)
                writers.check()  # an unreachable registry stops start-up
                self._registry_writers = writers
            if batch is None:
                return self._registry_writers.current()
            return self._registry_writers.for_batch(batch)
        if self._writers is None or (refresh and fmt.schema_dir is not None):
            self._writers = load_writer_schemas(self.spark, fmt)
            for schema_id, problem in self._writers.problems.items():
                log.error("writer schema id %d is not used: %s", schema_id, problem)
        return self._writers

    def _dry_run(self, batch: DataFrame) -> Probe:
        """A new version must score the first rows of the batch it would serve first."""

        def probe(entry: ModelEntry, model: PipelineModel) -> None:
            s = self.settings
            sample = batch.limit(DRY_RUN_ROWS)
            writers = self._writer_schemas()
            plan = ScoringPlan(
                sample, model, entry.version, entry.spec, s.validation, s.input_format, writers
            )
            plan.scored(sample).select("score").collect()

        return probe

    def _transactional_sink(self) -> ExecutorSink:
        s = self.settings
        if self._sink is None:
            self._sink = ExecutorSink(
                self.kafka,
                s.markers,
                f"scorestream-{query_id(s.checkpoint_dir)}",
                s.transaction_timeout_ms,
                max_message_bytes=self.max_request_bytes,
                after_commit=crash_after(s.crash_after_commit),
                crash=s.crash_in_task,
            )
        return self._sink

    def _unpublished(
        self, batch: DataFrame, batch_id: int
    ) -> tuple[DataFrame | None, Offsets | None]:
        """Exactly-once: the batch's rows not yet published (None: all were) and its end
        offsets, from comparing Spark's offset log with the last committed marker."""
        from pyspark.sql import functions as F

        s = self.settings
        sink = self._transactional_sink()
        end = batch_offsets(s.checkpoint_dir, batch_id, s.input_topic)
        start: Offsets | None = None
        if self._last_end is not None and self._last_end[0] == batch_id - 1:
            start = self._last_end[1]  # read from the offset log for the previous batch
        elif batch_id:
            start = batch_offsets(s.checkpoint_dir, batch_id - 1, s.input_topic)
        self._last_end = (batch_id, end)
        found = sink.coverage(batch_id, start, end)
        if found.skip:
            log.warning("exactly-once: batch %d: %s; replay skipped", batch_id, found.note)
            return None, end
        if not found.published:
            return batch, end
        log.warning("exactly-once: batch %d %s", batch_id, found.note)
        done = F.lit(False)
        for topic, parts in found.published.items():
            for partition, offset in parts.items():
                done = done | (
                    (F.col("topic") == topic)
                    & (F.col("partition") == partition)
                    & (F.col("offset") < offset)
                )
        return batch.where(~done), end

    def _publish_transaction(
        self,
        scored: DataFrame,
        plan: ScoringPlan,
        batch_id: int,
        end: Offsets | None,
        regroup: bool,
    ) -> None:
        """Publish the batch on the executors, one Kafka transaction (with a marker of its end
        offsets) per input partition (see streaming/exactly_once_tasks.py)."""
        rows = scored.select(*plan.sink_columns(self.topics), *SOURCE_COLUMNS)
        result = self._transactional_sink().publish(rows, batch_id, end, regroup)
        log.info(
            "batch %d: published %d records in one transaction per input partition in %.3f s",
            batch_id,
            result.records,
            result.seconds,
        )

    def preflight(self) -> None:
        """Start-up checks: broker reachable, topics there, checkpoint ours, schemas usable."""
        s = self.settings
        preflight.check_broker(self.kafka, s.startup_timeout_s)
        preflight.check_checkpoint(s.checkpoint_dir, s.bound())
        preflight.check_topics(
            self.kafka,
            s.input_topic,
            [s.output_topic, s.topics.dead_letter],
            s.create_topics,
            s.topic_partitions,
            compacted=[s.markers] if s.exactly_once else None,
        )
        self.topics, self.max_request_bytes = preflight.sink_limits(self.kafka, s.topics)
        prepare_decoding(
            self.spark, s.input_format, self.holder.spec, s.validation.max_record_bytes
        )
        self._writer_schemas()
        self._output = register_score_schema(s.output_format, s.output_topic)
        preflight.write_manifest(s.checkpoint_dir, s.bound())

    def start(self) -> StreamingQuery:
        """Check the set-up, create missing topics, start the query and return it."""
        self.preflight()
        self.query = self._start_query()
        self._watchdog.start()
        return self.query

    def _restart(self) -> None:
        self.query = self._start_query()

    def _start_query(self) -> StreamingQuery:
        s = self.settings
        writer = (
            kafka_source(self.spark, self.kafka, s)
            .writeStream.foreachBatch(self._process)
            .option("checkpointLocation", str(s.checkpoint_dir))
            .queryName(f"scorestream:{s.input_topic}->{s.output_topic}")
        )
        if s.trigger_interval:
            writer = writer.trigger(processingTime=s.trigger_interval)
        return writer.start()

    def active(self) -> bool:
        """True while the query runs or the watchdog may still restart it (SPARK-55271)."""
        query = self.query
        if query is not None and query.isActive:
            return True
        return self._watchdog.is_alive()

    def _restart_pending(self) -> bool:
        query = self.query
        return query is not None and not query.isActive and self.active()

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
            self.accounting.settle_quietly(timeout_s)
            self._close_sink()
            return
        got = self._batch_lock.acquire(timeout=timeout_s)
        try:
            self.query.stop()
            self.accounting.settle_quietly(timeout_s)
        finally:
            if got:
                self._batch_lock.release()
            self._close_sink()

    def _close_sink(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def raise_if_failed(self) -> None:
        if self._stopping.is_set():
            return
        if self._restart_pending():
            return  # the watchdog is deciding whether to restart it
        if self.query is not None and self.query.exception() is not None:
            exc = self.query.exception()
            first = str(exc).strip().splitlines()[0] if exc is not None else "unknown"
            msg = f"the scoring query failed: {first}"
            raise ScorestreamError(msg)
