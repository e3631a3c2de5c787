"""The streaming scorer: a Structured Streaming query from the input topic to scores and DLQ."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from scorestream.contract.reasons import REASONS
from scorestream.errors import ConfigError, ScorestreamError
from scorestream.fs import Location
from scorestream.kafka import KafkaSettings
from scorestream.models.source import ModelEntry, open_source
from scorestream.paths import STATE_ROOT
from scorestream.streaming import preflight
from scorestream.streaming.avro_input import (
    InputFormat,
    WriterSchemas,
    load_writer_schemas,
    prepare_decoding,
)
from scorestream.streaming.exactly_once import (
    EXACTLY_ONCE_MAX_OFFSETS,
    Offsets,
    batch_offsets,
    crash_after,
    query_id,
)
from scorestream.streaming.exactly_once_tasks import SOURCE_COLUMNS, ExecutorSink, TaskCrash
from scorestream.streaming.isolate import (
    Coordinate,
    Isolation,
    bisect,
    dead_letters_like,
    is_transient,
    summary,
)
from scorestream.streaming.model_holder import ModelHolder, Probe
from scorestream.streaming.registry_schemas import RegistryWriters, register_score_schema
from scorestream.streaming.scoring import OutputFormat, ScoringPlan, Topics
from scorestream.streaming.validate import REASON, ValidationSettings
from scorestream.tally import Tallied, Tally, tally

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScorerSettings:
    """Everything the scorer needs besides Kafka and Spark connection settings."""

    input_topic: str = "features"
    output_topic: str = "scores"
    dead_letter_topic: str = ""
    registry: Location = STATE_ROOT / "registry"  # or an hdfs:// (any Hadoop) URI
    model: str = "champion"  # or models:/NAME@ALIAS, models:/NAME/VERSION (MLflow)
    mlflow_uri: str = ""  # the MLflow tracking server of models:/ references
    checkpoint: Location | None = None
    trigger_interval: str = ""
    max_offsets_per_trigger: int | None = None
    min_partitions: int | None = None
    starting_offsets: str = "earliest"
    fail_on_data_loss: bool = True
    create_topics: bool = True
    topic_partitions: int = 2
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    input_format: InputFormat = field(default_factory=InputFormat)
    output_format: OutputFormat = field(default_factory=OutputFormat)
    exactly_once: bool = False
    marker_topic: str = ""  # exactly-once batch markers (empty: <output topic>.markers)
    transaction_timeout_ms: int = 300_000
    # exactly-once: records per micro-batch when max_offsets_per_trigger is unset.
    exactly_once_batch_records: int = EXACTLY_ONCE_MAX_OFFSETS
    startup_timeout_s: float = 30.0  # how long to retry an unreachable broker
    # A batch failing for a reason not in its data (broker, network, authorisation) is
    # retried this many times, after 1, 2, 4... times the backoff (at most 30 s), then the
    # query stops with the failure's message.
    batch_retries: int = 3
    retry_backoff_s: float = 1.0
    # Score by compiled expressions: off (the PipelineModel), auto (when parity holds), on. Off by
    # default: the parity check at load builds its probe rows in Python, so executors would
    # need a Python worker, and a cluster without one (JVM-only scoring) would fail.
    compiled: str = "off"
    # Test hook (SCORESTREAM_TEST_CRASH_AFTER_COMMIT): hard-exit right after the transaction of
    # this batch commits, before Spark commits the batch to its checkpoint.
    crash_after_commit: int | None = None
    # Test hook (SCORESTREAM_TEST_CRASH_IN_TASK): a task exits mid-transaction, Spark retries it.
    crash_in_task: TaskCrash | None = None
    # False: score and count each batch for the listeners, write nothing (the micro-batch
    # query that monitors a real-time scorer, see streaming/realtime.py).
    publish: bool = True

    @property
    def markers(self) -> str:
        return self.marker_topic or f"{self.output_topic}.markers"

    @property
    def offsets_per_trigger(self) -> int | None:
        """Records per micro-batch: the user's cap, else in exactly-once mode one a
        transaction carries well within its timeout (a backlog becomes many batches)."""
        if self.max_offsets_per_trigger:
            return self.max_offsets_per_trigger
        return self.exactly_once_batch_records if self.exactly_once else None

    def bound(self) -> dict[str, object]:
        """What a checkpoint is bound to (see streaming/preflight.py)."""
        return {
            "input_topic": self.input_topic,
            "output_topic": self.output_topic,
            "dead_letter_topic": self.topics.dead_letter,
            "exactly_once": self.exactly_once,
            "marker_topic": self.markers if self.exactly_once else "",
            "input_format": self.input_format.kind,
            "output_format": self.output_format.kind,
            "trigger": "realtime" if self.realtime else "micro-batch",
        }

    @property
    def realtime(self) -> bool:
        return self.trigger_interval.strip().lower().startswith("real")

    @property
    def topics(self) -> Topics:
        return Topics(
            output=self.output_topic,
            dead_letter=self.dead_letter_topic or f"{self.input_topic}.dlq",
        )

    @property
    def checkpoint_dir(self) -> Location:
        return self.checkpoint or STATE_ROOT / "checkpoints" / (
            f"{self.input_topic}--{self.output_topic}"
        )


MAX_RESTARTS = 5
DRY_RUN_ROWS = 200  # rows of the current batch a new model version must score before it serves


def listener_name(listener: object) -> str:
    """A listener's name in logs and metrics: its `name` attribute, else its class name."""
    return str(getattr(listener, "name", None) or type(listener).__name__)


def _is_spark_55271(exc: object) -> bool:
    """The NullPointerException of Spark 4.1.1's Kafka source metrics after a replayed batch."""
    if exc is None:
        return False
    # pyspark's StreamingQueryException keeps the Java stack trace apart from its message.
    text = f"{exc} {getattr(exc, '_stackTrace', '')} {getattr(exc, '_cause', '')}"
    return "KafkaMicroBatchStream" in text and (
        "NullPointerException" in text or "Option.get()" in text
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
    # exactly-once: the batch was committed by an earlier run and not published again.
    replay_skipped: bool = False
    # Seconds per step of the batch (plan, write, count, listeners), for logs and benchmarks.
    phases: dict[str, float] = field(default_factory=dict)
    # What the listeners' tallies found (see TallyingListener); False when they failed and
    # the batch was counted by reason alone.
    tallies: Tallied = field(default_factory=lambda: Tallied({}, {}))
    listener_tallies: bool = True


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


def kafka_source(spark: SparkSession, kafka: KafkaSettings, s: ScorerSettings) -> DataFrame:
    """The input topic as a streaming DataFrame, sized by the settings (both trigger modes)."""
    reader = (
        spark.readStream.format("kafka")
        .options(**kafka.spark_options())
        .option("subscribe", s.input_topic)
        .option("startingOffsets", s.starting_offsets)
        .option("failOnDataLoss", str(s.fail_on_data_loss).lower())
    )
    if s.offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(s.offsets_per_trigger))
    if s.min_partitions:
        reader = reader.option("minPartitions", str(s.min_partitions))
    return reader.load()


REASONS_TALLY = "__reasons"  # the scorer's own tally's name


@functools.cache
def reasons_tally() -> Tally:
    """The scorer's count of a batch's rows by reason: key 0 for a scored row, 1 + the index in
    REASONS for a dead-lettered one, -1 for any other reason (read by `by_reason`)."""
    from pyspark.sql import functions as F

    reason = F.col(REASON)
    key = F.when(reason.isNull(), F.lit(0))
    for i, code in enumerate(REASONS):
        key = key.when(reason == F.lit(code), F.lit(i + 1))
    return Tally(key.otherwise(F.lit(-1)))


def by_reason(tallied: Tallied) -> dict[str | None, int]:
    """Records by reason (None: scored) from the tally of `reasons_tally()`."""
    counts: dict[str | None, int] = {None: tallied.count(REASONS_TALLY, 0)}
    for i, code in enumerate(REASONS):
        if tallied.count(REASONS_TALLY, i + 1):
            counts[code] = tallied.count(REASONS_TALLY, i + 1)
    unknown = tallied.count(REASONS_TALLY, -1)
    if unknown:  # validation only sets REASONS; fail loudly rather than lose count
        msg = f"{unknown} dead-lettered record(s) have a reason outside {', '.join(REASONS)}"
        raise ScorestreamError(msg)
    return counts


class BatchListener(Protocol):
    """Called once per written micro-batch (monitoring plugs in here).

    `scored` is the batch after decoding, validation and scoring, cached while listeners run:
    typed feature columns, `_reason` (null for scored rows), `score`, `prediction`,
    `model_version`, `_scored_at`. Listeners run on the scorer's accounting thread once the
    batch is on Kafka, overlapping the next batch (at most one batch is in flight:
    `Scorer.settle()` waits for it). A listener cannot fail the batch: its exceptions are
    logged and counted (`on_listener_failure`, scorestream_listener_failures_total) under its
    `name` attribute (else its class name).
    """

    def on_batch(self, scored: DataFrame, stats: BatchStats) -> None: ...


class TallyingListener(BatchListener, Protocol):
    """A listener whose per-batch numbers are counts (and sums) per key over the scored rows.

    `batch_tallies(version)` returns columns to add to the scored rows and named tallies over
    them (`scorestream.tally`; names unique across listeners). The scorer evaluates every
    listener's tallies and its own counts by reason in one Spark job per batch, and hands the
    result to `on_batch` in `stats.tallies`: one job instead of one per listener.
    """

    def batch_tallies(self, version: int) -> tuple[Sequence[Column], Mapping[str, Tally]]: ...


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
        # Hears the name of every failed listener (or "tallies", "accounting"): the metrics.
        self.on_listener_failure: Callable[[str], None] = lambda _name: None
        self.kafka = kafka
        self.settings = settings
        self.registry, ref = open_source(settings.registry, settings.model, settings.mlflow_uri)
        self.holder = ModelHolder(self.registry, ref, compile_mode=settings.compiled)
        self.totals = Totals()
        self.last_batch: BatchStats | None = None
        self.query: StreamingQuery | None = None
        # Held while a batch runs, so a stop waits for the batch instead of interrupting it.
        self._batch_lock = threading.Lock()
        self._stopping = threading.Event()
        self._sink: ExecutorSink | None = None
        # Exactly-once: the last batch's id and end offsets, the next batch's start offsets.
        self._last_end: tuple[int, Offsets | None] | None = None
        self.restarts = 0  # query restarts after SPARK-55271 (see _watch)
        self._watchdog: threading.Thread | None = None
        self._writers: WriterSchemas | None = None
        self._registry_writers: RegistryWriters | None = None
        self._output = settings.output_format  # with the registry's id after preflight
        self._scoring: tuple[object, ScoringPlan] | None = None
        # The last written batch while it is counted and its listeners run, and its rows.
        self._accountant = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer-account")
        self._inflight: tuple[DataFrame, Future[None]] | None = None
        self._inflight_lock = threading.Lock()
        # Where records go and the largest each topic takes (read by preflight), and the
        # max.request.size of the scorer's Kafka sink.
        self.topics: Topics = settings.topics
        self.max_request_bytes: int | None = None
        self.isolated = 0  # records dead-lettered as PROCESSING_ERROR since the start
        self.batch_retries = 0  # batch attempts retried after a failure not in the data

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
                self.last_batch = BatchStats(batch_id, 0, 0, {}, duration, version, True)
                return
            batch = unpublished
        self.holder.refresh(self._dry_run(batch))
        version = self.holder.entry.version
        plan = self._plan(batch)
        scored, phases = self._write_resilient(batch, batch_id, plan, started, end)
        accounted = False
        try:
            duration = time.monotonic() - started
            # The previous batch's accounting is done before this one's starts: at most one
            # batch is in flight, and its rows are released.
            self.settle()
            work = self._accountant.submit(
                self._account, scored, batch_id, version, duration, phases
            )
            with self._inflight_lock:
                self._inflight = (scored, work)
            accounted = True
        finally:
            if not accounted:
                scored.unpersist()

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
        at most `batch_retries` times, then stops the query."""
        s = self.settings
        isolation = Isolation({})
        attempts = 0
        while True:
            try:
                return self._write(batch, batch_id, plan, isolation, started, end)
            except StopRequested:
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    raise
                failure: BaseException = exc
                if not is_transient(exc):
                    try:
                        found = self._isolate(batch, plan, isolation.culprits)
                    except Exception as probe_exc:
                        if not is_transient(probe_exc):
                            raise
                        failure, found = probe_exc, {}
                    if found:
                        isolation.culprits.update(found)
                        self.isolated += len(found)
                        log.warning(
                            "batch %d: %d record(s) make it fail, dead-lettered as "
                            "PROCESSING_ERROR: %s",
                            batch_id,
                            len(found),
                            "; ".join(f"{p}:{o} {why}" for (p, o), why in found.items()),
                        )
                        continue
                    # Not reproduced on any part of the batch: not the data's fault after all.
                attempts += 1
                if attempts > s.batch_retries:
                    msg = (
                        f"batch {batch_id} failed {attempts} times for a reason that is not in "
                        f"its records, stopping: {summary(failure)}"
                    )
                    raise ScorestreamError(msg) from failure
                self.batch_retries += 1
                delay = min(s.retry_backoff_s * 2 ** (attempts - 1), 30.0)
                log.warning(
                    "batch %d failed (%s); retry %d of %d in %.1f s",
                    batch_id,
                    summary(failure),
                    attempts,
                    s.batch_retries,
                    delay,
                )
                if self._stopping.wait(delay):
                    msg = f"scorer stopping; batch {batch_id} left for the next run"
                    raise StopRequested(msg) from failure

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

    def _account(
        self,
        scored: DataFrame,
        batch_id: int,
        version: int,
        duration_s: float,
        phases: dict[str, float],
    ) -> None:
        """Count a written batch by reason and run the listeners (on the accounting thread).

        This overlaps the next batch's trigger, planning and write instead of delaying them.
        """
        started = time.monotonic()
        complete = True
        try:
            tallied = self._tally(scored, version)
        except Exception:
            # A listener's tally column failed in Spark: count the batch by reason alone.
            complete = False
            self._listener_failed("tallies")
            log.exception("the listeners' tallies of batch %d failed; counting by reason", batch_id)
            tallied = self._tally(scored, version, listeners=False)
        reasons = by_reason(tallied)
        phases["count"] = time.monotonic() - started
        dead = {reason: n for reason, n in reasons.items() if reason is not None}
        stats = BatchStats(
            batch_id=batch_id,
            records_in=sum(reasons.values()),
            scored=reasons.get(None, 0),
            dead_lettered=dead,
            duration_s=duration_s,
            model_version=version,
            phases=phases,
            tallies=tallied,
            listener_tallies=complete,
        )
        for listener in self.listeners:
            try:
                listener.on_batch(scored, stats)
            except Exception:
                self._listener_failed(listener_name(listener))
                log.exception("batch listener %r failed on batch %d", listener, batch_id)
        phases["listeners"] = time.monotonic() - started - phases["count"]
        self.totals.add(stats)
        self.last_batch = stats
        log.info(
            "batch %d: %d in, %d scored, %s dead-lettered, %.3f s (%s), model v%d",
            batch_id,
            stats.records_in,
            stats.scored,
            stats.dead_lettered or 0,
            duration_s,
            ", ".join(f"{k} {v:.3f}" for k, v in phases.items()),
            stats.model_version,
        )

    def _listener_failed(self, name: str) -> None:
        self.listener_failures += 1
        try:
            self.on_listener_failure(name)
        except Exception:  # the metrics must not fail the batch either
            log.exception("counting a failure of %s failed", name)

    def _tally(self, scored: DataFrame, version: int, listeners: bool = True) -> Tallied:
        """The counts by reason and every listener's batch tallies, in one Spark job.

        One task (coalesce(1)) reads the cached rows, and the other core stays with the next
        batch; the group-by after it is over a few hundred (tally, key) groups.
        """
        from pyspark.sql import functions as F

        projections: list[Column] = [F.col(REASON)]
        tallies: dict[str, Tally] = {REASONS_TALLY: reasons_tally()}
        for listener in self.listeners if listeners else ():
            hook = getattr(listener, "batch_tallies", None)
            if hook is None:
                continue
            try:
                more_columns, more_tallies = hook(version)
                taken = tallies.keys() & more_tallies.keys()
                if taken:
                    msg = f"tally names {sorted(taken)} are already taken"
                    raise ScorestreamError(msg)
            except Exception:
                self._listener_failed(listener_name(listener))
                log.exception("batch listener %r failed to give its tallies", listener)
                continue
            projections += more_columns
            tallies.update(more_tallies)
        return tally(scored.select(*projections).coalesce(1), tallies)

    def settle(self, timeout_s: float = 300.0) -> None:
        """Wait until the last written batch is counted and its listeners ran (totals,
        `last_batch` and metrics then include it), and release its cached rows. A failure
        of the accounting is logged and counted, never raised: the batch is on Kafka."""
        with self._inflight_lock:
            if self._inflight is None:
                return
            scored, work = self._inflight
            self._inflight = None
            try:
                work.result(timeout=timeout_s)
            except Exception:
                self._listener_failed("accounting")
                log.exception(
                    "accounting of a written batch failed: it is published, its counts and "
                    "listeners are missing"
                )
            finally:
                scored.unpersist()

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
        self._watchdog = threading.Thread(target=self._watch, name="scorer-watchdog", daemon=True)
        self._watchdog.start()
        return self.query

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

    def _watch(self) -> None:
        """Restart the query after Spark 4.1.1's Kafka-source bug SPARK-55271, nothing else.

        After a crash, the batch left uncommitted is replayed on restart; Spark then reports
        its progress with Kafka offsets it never fetched and fails with a NullPointerException
        in KafkaMicroBatchStream.metrics, after the batch was written and committed. Starting
        the query again continues from the next batch. Any other failure is left to the caller
        (raise_if_failed).
        """
        while not self._stopping.is_set():
            query = self.query
            if query is None:
                return
            try:
                if query.awaitTermination(1):
                    if not _is_spark_55271(query.exception()):
                        return
                else:
                    continue
            except Exception as exc:
                if not _is_spark_55271(exc):
                    return
            if self._stopping.is_set() or self.restarts >= MAX_RESTARTS:
                return
            self.restarts += 1
            log.warning(
                "the query hit Spark bug SPARK-55271 after replaying a batch; restarting it "
                "(%d of at most %d)",
                self.restarts,
                MAX_RESTARTS,
            )
            self.query = self._start_query()

    def active(self) -> bool:
        """True while the query runs or the watchdog may still restart it (SPARK-55271)."""
        query = self.query
        if query is not None and query.isActive:
            return True
        return self._watchdog is not None and self._watchdog.is_alive()

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
            self._settle_quietly(timeout_s)
            self._close_sink()
            return
        got = self._batch_lock.acquire(timeout=timeout_s)
        try:
            self.query.stop()
            self._settle_quietly(timeout_s)
        finally:
            if got:
                self._batch_lock.release()
            self._close_sink()

    def _settle_quietly(self, timeout_s: float) -> None:
        try:
            self.settle(timeout_s)
        except Exception:  # logged by settle(); stopping goes on
            log.debug("accounting failed while stopping", exc_info=True)

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


def validate_settings(settings: ScorerSettings) -> None:
    if settings.input_topic in (settings.output_topic, settings.topics.dead_letter):
        msg = (
            f"input topic {settings.input_topic!r} must differ from the output and "
            "dead-letter topics"
        )
        raise ConfigError(msg)
    if settings.exactly_once and settings.markers in (
        settings.input_topic,
        settings.output_topic,
        settings.topics.dead_letter,
    ):
        msg = f"marker topic {settings.markers!r} must differ from the data topics"
        raise ConfigError(msg)
    if settings.exactly_once and settings.min_partitions:
        msg = (
            f"--min-partitions {settings.min_partitions} and --exactly-once: each input "
            "partition is published by one task in one transaction, so it cannot be split"
        )
        raise ConfigError(msg)
    if settings.exactly_once and settings.trigger_interval.strip().lower().startswith("real"):
        msg = "--exactly-once needs micro-batch mode (foreachBatch); real-time mode has none"
        raise ConfigError(msg)
