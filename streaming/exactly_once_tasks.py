"""`--exactly-once` on the executors: one Kafka transaction per task and input partition.

Each Spark task publishes its input partition in its own transaction, with its marker.

The driver no longer carries the records. For every micro-batch it runs one Spark job over the
batch's sink rows (`mapInArrow`, one task per input partition, as Spark's Kafka source plans
it); each task opens a transactional confluent-kafka producer with the id
`<query id>-<input topic>-<input partition>` (so a zombie attempt of the same partition is
fenced: `initTransactions` aborts its open transaction), reads the partition's last committed
marker, writes the rows at or above the marker's end offset (scores and dead letters) plus a
new marker `{query, batch_id, records, end_offsets: {topic: {partition: end}}, floor}` in one
transaction, and commits. Partitions commit independently; each partition's output is atomic
with its marker, so a retried task (Spark's task retry, the scorer's batch retry, a restart
from the checkpoint) skips what an earlier attempt committed and nothing is written twice.

Finding the last marker is cheap: input partition p writes only marker partition p (its key,
the transactional id, is the only one there), so the newest marker is among the last few
records of that partition (`TransactionalSink._read_last_marker` reads back from the end).
The marker topic gets as many partitions as the input has: the driver adds partitions when an
input partition appears that has none (an input topic that grew); the new input partition has
no marker and all of it is published.

The driver keeps what exactly_once.py decides per batch (`coverage`): at the first batch of a
run it reads every input partition's marker (fencing every partition's id first, so no zombie
transaction holds its readers back), compares the batch's offset range with them, skips or
trims a replayed batch before it is scored and stops on a gap; after that it knows from its
own successful batches. Not covered: an input partition split over several tasks (Spark's
`minPartitions`, refused in this mode) and an input range holding no record at all (only
transaction control records) just before a crash: its marker stays behind and the restart
reports a gap.

One module (about 400 lines) because it is one Spark job seen from both ends: the driver's
`ExecutorSink` builds each batch's `TaskPlan`, and `partition_writer` (shipped to the tasks)
carries it out and answers in `REPORT_SCHEMA`; the plan, the report and the transactional id
are their shared contract.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scorestream.errors import ConfigError, ScorestreamError, StackError
from scorestream.kafka import KafkaSettings, describe_error, topic_partitions
from scorestream.streaming.exactly_once import (
    CRASH_EXIT_CODE,
    Coverage,
    Offsets,
    PublishResult,
    Record,
    TransactionalSink,
    advance,
    coverage,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

# What each task reports to the driver, one row per input partition it published.
REPORT_SCHEMA = "topic string, partition int, records long, skipped long, seconds double"
SOURCE_COLUMNS = ("_src_topic", "_src_partition", "_src_offset")


def transactional_id(query: str, topic: str, partition: int) -> str:
    """The transactional id of one input partition of the query (`query`: its base id)."""
    return f"{query}-{topic}-{partition}"


@dataclass(frozen=True)
class TaskCrash:
    """Test hook (SCORESTREAM_TEST_CRASH_IN_TASK=batch:partition:records): the first attempt of
    the task publishing `partition` in batch `batch_id` sends `records` records of its
    transaction to the broker and then exits its Python worker at once (no commit, no abort),
    so Spark retries the task."""

    batch_id: int
    partition: int
    records: int

    @classmethod
    def parse(cls, raw: str) -> TaskCrash:
        parts = raw.split(":")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            msg = (
                f"SCORESTREAM_TEST_CRASH_IN_TASK={raw!r} is not valid; expected "
                "<batch id>:<input partition>:<records before the crash>"
            )
            raise ConfigError(msg)
        batch_id, partition, records = (int(p) for p in parts)
        return cls(batch_id, partition, records)


@dataclass(frozen=True)
class TaskPlan:
    """What every task of one batch needs; pickled into the tasks with the function (the
    Kafka settings too: their secrets travel in the task, never in Spark's conf or a log)."""

    kafka: KafkaSettings
    marker_topic: str
    query: str
    batch_id: int
    end: Offsets | None
    transaction_timeout_ms: int
    max_message_bytes: int | None
    timeout_s: float
    crash: TaskCrash | None = None


def _rows(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[str, int, int, Record]]:
    """(source topic, source partition, source offset, record) of the sink rows."""
    for batch in batches:
        columns = batch.to_pydict()
        for topic, key, value, headers, src_topic, src_partition, offset in zip(
            columns["topic"],
            columns["key"],
            columns["value"],
            columns["headers"],
            columns["_src_topic"],
            columns["_src_partition"],
            columns["_src_offset"],
            strict=True,
        ):
            pairs = [(h["key"], h["value"] or b"") for h in headers or ()]
            yield src_topic, src_partition, offset, (topic, key, value, pairs)


def _by_partition(
    rows: Iterator[tuple[str, int, int, Record]],
) -> Iterator[tuple[tuple[str, int], Iterator[tuple[int, Record]]]]:
    """The rows in runs of one input partition; a partition met twice is an error: its second
    run would find the first one's marker and be skipped."""
    seen: set[tuple[str, int]] = set()
    head = next(rows, None)
    while head is not None:
        where = (head[0], head[1])
        if where in seen:
            msg = (
                f"exactly-once: the rows of input partition {where[0]}/{where[1]} are not "
                "contiguous in their task; each input partition needs one run in one task"
            )
            raise ScorestreamError(msg)
        seen.add(where)
        after: list[tuple[str, int, int, Record]] = []

        def run(
            first: tuple[str, int, int, Record] = head,
            where: tuple[str, int] = where,
            after: list[tuple[str, int, int, Record]] = after,
        ) -> Iterator[tuple[int, Record]]:
            yield first[2], first[3]
            for row in rows:
                if (row[0], row[1]) != where:
                    after.append(row)
                    return
                yield row[2], row[3]

        group = run()
        yield where, group
        for _ in group:  # what the caller left unread
            pass
        head = after[0] if after else None


def _crashing(records: Iterator[Record], sink: TransactionalSink, at: int) -> Iterator[Record]:
    """The records, and the test hook's hard exit once `at` of them were produced."""
    for count, record in enumerate(records):
        if count == at:
            sink.flush(30)  # on the broker, in the open transaction
            log.error("exactly-once test hook: task exits mid-transaction after %d records", at)
            os._exit(CRASH_EXIT_CODE)
        yield record


def publish_partition(
    plan: TaskPlan, topic: str, partition: int, rows: Iterator[tuple[int, Record]], attempt: int
) -> dict[str, Any]:
    """Publish one input partition's rows of the batch and its marker in one transaction;
    rows below the offset its last committed marker ends at are skipped (published before)."""
    started = time.monotonic()
    sink = TransactionalSink(
        plan.kafka,
        plan.marker_topic,
        transactional_id(plan.query, topic, partition),
        plan.transaction_timeout_ms,
        plan.timeout_s,
        max_message_bytes=plan.max_message_bytes,
        marker_partition=partition,
    )
    skipped = 0
    try:
        sink.start()  # fences an earlier attempt and aborts its open transaction
        floor = (sink.published or {}).get(topic, {}).get(partition)
        last = None if plan.end is None else plan.end.get(topic, {}).get(partition)
        end = None if last is None else {topic: {partition: last}}
        if floor is not None and last is not None and floor >= last:
            skipped = sum(1 for _ in rows)  # committed by an earlier attempt
            return _report(topic, partition, 0, skipped, started)

        def fresh() -> Iterator[Record]:
            nonlocal skipped
            for offset, record in rows:
                if floor is not None and offset < floor:
                    skipped += 1
                    continue
                yield record

        records: Iterator[Record] = fresh()
        crash = plan.crash
        if (
            crash is not None
            and attempt == 0
            and (crash.batch_id, crash.partition) == (plan.batch_id, partition)
        ):
            records = _crashing(records, sink, crash.records)
        result = sink.publish(plan.batch_id, records, end, extra={"floor": floor or 0})
    finally:
        sink.close()
    return _report(topic, partition, result.records, skipped, started)


def _report_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("topic", pa.string()),
            ("partition", pa.int32()),
            ("records", pa.int64()),
            ("skipped", pa.int64()),
            ("seconds", pa.float64()),
        ]
    )


def _report(topic: str, partition: int, records: int, skipped: int, started: float) -> dict:
    return {
        "topic": topic,
        "partition": partition,
        "records": records,
        "skipped": skipped,
        "seconds": time.monotonic() - started,
    }


def partition_writer(
    plan: TaskPlan,
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function `mapInArrow` runs in each task: publish, then report per input partition."""

    def write(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        from pyspark import TaskContext

        context = TaskContext.get()
        attempt = context.attemptNumber() if context is not None else 0
        reports = [
            publish_partition(plan, topic, partition, rows, attempt)
            for (topic, partition), rows in _by_partition(_rows(batches))
        ]
        if reports:
            yield pa.RecordBatch.from_pylist(reports, schema=_report_schema())

    return write


def ensure_marker_partitions(kafka: KafkaSettings, topic: str, count: int) -> int:
    """Grow the marker topic to `count` partitions when it has fewer; return its count."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions

    have = topic_partitions(kafka, topic)
    if have >= count:
        return have
    admin = AdminClient(kafka.confluent())
    future = admin.create_partitions([NewPartitions(topic, count)])[topic]
    try:
        future.result(timeout=30)
    except KafkaException as exc:
        if "INVALID_PARTITIONS" not in str(exc):  # another scorer grew it meanwhile
            msg = f"cannot add partitions to marker topic {topic!r}: {describe_error(exc)}"
            raise StackError(msg) from exc
    deadline = time.monotonic() + 30
    while topic_partitions(kafka, topic) < count:
        if time.monotonic() > deadline:
            msg = f"marker topic {topic!r} did not reach {count} partitions within 30 s"
            raise StackError(msg)
        time.sleep(0.1)  # polling metadata with a deadline
    log.info("exactly-once: marker topic %s now has %d partitions (one per input)", topic, count)
    return count


class ExecutorSink:
    """The driver's side: what of a batch is still to publish, and the job that publishes it
    on the executors (one transaction per input partition)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        marker_topic: str,
        query: str,
        transaction_timeout_ms: int = 300_000,
        timeout_s: float = 60.0,
        max_message_bytes: int | None = None,
        after_commit: Callable[[int], None] = lambda _batch_id: None,
        crash: TaskCrash | None = None,
    ) -> None:
        self.kafka = kafka
        self.marker_topic = marker_topic
        self.query = query  # the base of every partition's transactional id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.timeout_s = timeout_s
        self.max_message_bytes = max_message_bytes
        self.after_commit = after_commit  # a test hook: runs once every partition committed
        self.crash = crash
        self.last_committed = -1
        self.published: Offsets | None = None  # end offsets published so far (None: unread)
        self._marker_partitions = 0

    def coverage(self, batch_id: int, start: Offsets | None, end: Offsets | None) -> Coverage:
        """What of batch `batch_id` ([start, end) per partition) is still to publish."""
        self._grow_markers(end)
        if self.published is None:
            self._read_markers(end)
        return coverage(batch_id, start, end, self.last_committed, self.published)

    def _grow_markers(self, end: Offsets | None) -> None:
        wanted = 1 + max((p for parts in (end or {}).values() for p in parts), default=0)
        if wanted > self._marker_partitions:
            self._marker_partitions = ensure_marker_partitions(
                self.kafka, self.marker_topic, wanted
            )

    def _read_markers(self, end: Offsets | None) -> None:
        """Every input partition's last marker (each id's producer started, so any zombie
        transaction is aborted), and the marker of a scorer that published from the driver
        (before this mode ran on the executors), whichever reaches further."""
        published: Offsets | None = None
        last = -1
        sinks = [
            self._sink(transactional_id(self.query, topic, partition), partition)
            for topic, parts in (end or {}).items()
            for partition in sorted(parts)
        ]
        sinks.append(self._sink(self.query, None))  # the driver-published mode's marker
        for sink in sinks:
            try:
                sink.start()
            finally:
                sink.close()
            published = advance(published, sink.published)
            last = max(last, sink.last_committed)
        self.published = published or {}
        self.last_committed = last
        log.info("exactly-once: last committed batch %d, published up to %s", last, self.published)

    def _sink(self, tid: str, partition: int | None) -> TransactionalSink:
        return TransactionalSink(
            self.kafka,
            self.marker_topic,
            tid,
            self.transaction_timeout_ms,
            self.timeout_s,
            marker_partition=partition,
        )

    def publish(
        self, rows: DataFrame, batch_id: int, end: Offsets | None, regroup: bool = False
    ) -> PublishResult:
        """Publish the sink rows (topic, key, value, headers and the source columns) of batch
        `batch_id` ending at `end`, one transaction per input partition on the executors.
        `regroup`: the rows of one input partition may lie in several Spark partitions (a
        union), so they are brought together first."""
        from pyspark.sql import functions as F

        started = time.monotonic()
        if regroup:
            keys = [F.col("_src_topic"), F.col("_src_partition")]
            rows = rows.repartition(*keys).sortWithinPartitions(*keys, F.col("_src_offset"))
        plan = TaskPlan(
            self.kafka,
            self.marker_topic,
            self.query,
            batch_id,
            end,
            self.transaction_timeout_ms,
            self.max_message_bytes,
            self.timeout_s,
            self.crash,
        )
        reports = rows.mapInArrow(partition_writer(plan), REPORT_SCHEMA).collect()
        records = sum(r["records"] for r in reports)
        skipped = sum(r["skipped"] for r in reports)
        if skipped:
            # A retried task whose earlier attempt had committed (the driver filters replays
            # of earlier runs before scoring).
            log.warning(
                "exactly-once: batch %d: %d record(s) were committed by an earlier attempt of "
                "their task and not published again",
                batch_id,
                skipped,
            )
        self.published = advance(self.published, end)
        self.last_committed = max(self.last_committed, batch_id)
        self.after_commit(batch_id)
        return PublishResult(records, False, time.monotonic() - started)

    def close(self) -> None:
        """Nothing to close on the driver: each task closes its producer."""
