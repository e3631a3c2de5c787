"""`--exactly-once` bookkeeping and writer: Kafka transactions, each with an offsets marker.

Spark's Kafka sink is at-least-once (a batch replayed after a crash is written again), and no
transactional sink exists upstream (SPARK-28908). So in this mode the scorer publishes with a
transactional confluent-kafka producer (`TransactionalSink`): records and a marker record
`{query, batch_id, records, end_offsets}` on the marker topic go into one transaction. Since
streaming/exactly_once_tasks.py, each Spark task does so for its input partition, with a
transactional id per (query, input partition); the id is stable for a checkpoint (derived from
Spark's query id, kept in the checkpoint), so a restarted writer fences the crashed one (its
open transaction is aborted) and reads the last committed marker.

The marker's `end_offsets` are, per input partition, the end (exclusive) of everything
published so far. Each batch's offset range (from Spark's offset log in the checkpoint) is
compared with them (`Coverage`): a batch wholly below them was published before and is skipped
(the replay after a crash between the transaction commit and Spark's checkpoint commit); a
batch partly below them (an older checkpoint restored, or a changed batch size) publishes only
its records at or above them; a batch that starts above them would leave input unpublished and
stops the query with a message saying so. Offsets, not batch ids, decide: after a restore the
same batch id may cover other offsets.

A transaction must commit within `transaction.timeout.ms`, so in this mode a micro-batch is
bounded (`EXACTLY_ONCE_MAX_OFFSETS` records unless --max-offsets-per-trigger says otherwise):
a backlog is published as many transactions, not one that outlives its timeout.

Not covered: consumers reading with read_uncommitted (they see aborted records too), and
anything the scorer writes outside Kafka (listeners, metrics) which sees replays again.

One module (about 450 lines) because the marker is one record format with its writer and its
reader side by side: `TransactionalSink` writes `end_offsets` in the transaction and reads the
last one back, and `coverage` and `advance` decide on them; apart, the format would be written
in one file and interpreted in another.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from scorestream import fs
from scorestream.errors import ScorestreamError, StackError
from scorestream.fs import Location
from scorestream.kafka import KafkaSettings, describe_error

log = logging.getLogger(__name__)

# (topic, key, value, headers) as produced.
Record = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]
# {topic: {partition: offset}}, Spark's and the marker's shape of a position in the input.
Offsets = dict[str, dict[int, int]]

# Records per micro-batch in exactly-once mode when the user set no --max-offsets-per-trigger:
# the tasks publish them at tens of thousands a second on a small machine, far inside the
# default 300 s transaction timeout, and a backlog becomes many bounded transactions.
EXACTLY_ONCE_MAX_OFFSETS = 100_000
# Records read back from the end of a marker partition before reading further back: a
# partition of one transactional id holds two per transaction (the marker, the commit).
MARKER_WINDOW = 16


def _offsets(raw: object) -> Offsets:
    """{topic: {partition: offset}} from JSON-decoded offsets (string partition keys)."""
    if not isinstance(raw, dict):
        msg = f"offsets {raw!r} are not a {{topic: {{partition: offset}}}} object"
        raise ValueError(msg)
    return {str(t): {int(p): int(o) for p, o in parts.items()} for t, parts in raw.items()}


def batch_offsets(checkpoint: Location, batch_id: int, topic: str) -> Offsets | None:
    """The end offsets of micro-batch `batch_id` of the Kafka source reading `topic`, from
    Spark's offset log (`<checkpoint>/offsets/<batch id>`: a version line, the batch metadata,
    then one line per source); None when the file is not there. Local or Hadoop URI."""
    path = checkpoint / "offsets" / str(batch_id)
    store = fs.store(path)
    if not store.is_file(path):
        return None
    lines = store.read_bytes(path).decode("utf-8").splitlines()
    for line in lines[2:]:
        try:
            offsets = _offsets(json.loads(line))
        except ValueError:
            continue
        if topic in offsets:
            return offsets
    msg = f"{path} holds no offsets of topic {topic!r}: not this query's checkpoint"
    raise ScorestreamError(msg)


@dataclass(frozen=True)
class Coverage:
    """How a batch's offsets compare with what the committed markers say was published."""

    skip: bool  # wholly published before
    published: Offsets  # publish only records at or above these offsets (empty: all)
    note: str  # what a replay or an overlap means, for the log (empty: a plain new batch)


def coverage(
    batch_id: int,
    start: Offsets | None,
    end: Offsets | None,
    last_batch: int,
    published: Offsets | None,
) -> Coverage:
    """Compare batch `batch_id` ([start, end) per partition) with the last marker (`last_batch`,
    `published`: its end offsets, None for a marker without them). A ScorestreamError when the
    batch starts above what was published: the input in between would never be published."""
    if published is None or end is None:
        # A marker written before end offsets were recorded: batch ids are all there is.
        if batch_id <= last_batch:
            return Coverage(True, {}, f"committed before (last {last_batch})")
        return Coverage(False, {}, "")
    gaps = []
    for topic, parts in (start or {}).items():
        for partition, first in parts.items():
            done = published.get(topic, {}).get(partition)
            if done is not None and first > done:
                gaps.append(f"{topic}/{partition} offsets {done}..{first - 1}")
    if gaps:
        msg = (
            f"exactly-once: batch {batch_id} starts after what was published (last committed "
            f"batch {last_batch}): {', '.join(gaps)} would never be published. The checkpoint "
            "is newer than the marker topic's record of it; restore the matching checkpoint, "
            "or start with a new checkpoint and --starting-offsets naming where to resume"
        )
        raise ScorestreamError(msg)
    overlap: Offsets = {}  # partitions whose batch range starts below what was published
    new = False  # some partition has records above what was published
    for topic, parts in end.items():
        for partition, last in parts.items():
            done = published.get(topic, {}).get(partition)
            begin = (start or {}).get(topic, {}).get(partition)
            if done is None:  # a partition no marker knows (added to the topic): all new
                new = new or begin is None or last > begin
                continue
            if begin is None or begin < done:
                overlap.setdefault(topic, {})[partition] = done
            new = new or last > done
    if not new:
        return Coverage(True, {}, f"its offsets were published before (last batch {last_batch})")
    if not overlap:
        return Coverage(False, {}, "")
    where = ", ".join(
        f"{t}/{p} below {o}" for t, parts in overlap.items() for p, o in parts.items()
    )
    return Coverage(
        False,
        overlap,
        f"overlaps what was published up to batch {last_batch} ({where}): those records are "
        "skipped, the rest is published",
    )


def advance(published: Offsets | None, end: Offsets | None) -> Offsets | None:
    """The published end offsets after a batch ending at `end` (the larger per partition)."""
    if end is None:
        return published
    merged = {t: dict(parts) for t, parts in (published or {}).items()}
    for topic, parts in end.items():
        mine = merged.setdefault(topic, {})
        for partition, offset in parts.items():
            mine[partition] = max(offset, mine.get(partition, offset))
    return merged


def query_id(checkpoint: Location, timeout_s: float = 30.0) -> str:
    """Spark's id of the query that owns `checkpoint` (stable across restarts)."""
    path = checkpoint / "metadata"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return str(json.loads(fs.read_text(path))["id"])
        except (OSError, ValueError, KeyError) as exc:
            if time.monotonic() > deadline:
                msg = f"cannot read the query id from {path}: {exc}"
                raise ScorestreamError(msg) from exc
        time.sleep(0.05)  # Spark writes the file as the query starts: poll with a deadline


@dataclass(frozen=True)
class PublishResult:
    records: int
    skipped: bool
    seconds: float


class TransactionalSink:
    """Publishes whole batches atomically; skips batches already committed."""

    def __init__(
        self,
        kafka: KafkaSettings,
        marker_topic: str,
        transactional_id: str,
        transaction_timeout_ms: int = 300_000,
        timeout_s: float = 60.0,
        max_message_bytes: int | None = None,
        after_commit: Callable[[int], None] = lambda _batch_id: None,
        marker_partition: int | None = None,
    ) -> None:
        self.kafka = kafka
        # The one marker partition this id writes and reads (streaming/exactly_once_tasks.py);
        # None: the key's partition, found by reading every partition.
        self.marker_partition = marker_partition
        # The largest record the topics take (preflight); librdkafka's own default is 1e6.
        self.max_message_bytes = max_message_bytes
        self.marker_topic = marker_topic
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.timeout_s = timeout_s
        self.after_commit = after_commit  # a test hook: runs between commit and return
        self._producer: Any = None
        self.last_committed = -1
        self.published: Offsets | None = None  # end offsets of the last marker (None: unknown)

    def start(self) -> None:
        """Fence earlier producers of this id and read the last committed batch (once)."""
        if self._producer is None:
            self._start()

    def _start(self) -> None:
        from confluent_kafka import KafkaException, Producer

        producer = Producer(
            self.kafka.confluent(
                **{
                    "transactional.id": self.transactional_id,
                    "transaction.timeout.ms": self.transaction_timeout_ms,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "batch.num.messages": 10_000,
                    "compression.type": "lz4",
                    **self._size_options(),
                }
            )
        )
        try:
            # Fences an earlier producer with this id and aborts its open transaction.
            producer.init_transactions(self.timeout_s)
        except KafkaException as exc:
            msg = (
                f"cannot start transactions on {self.kafka.bootstrap} as "
                f"{self.transactional_id!r}: {describe_error(exc)}"
            )
            raise StackError(msg) from exc
        self._producer = producer
        marker = self._read_last_marker()
        self.last_committed = int(marker.get("batch_id", -1))
        try:
            self.published = _offsets(marker["end_offsets"]) if "end_offsets" in marker else None
        except ValueError as exc:
            msg = f"the last marker on {self.marker_topic} has bad end offsets: {exc}"
            raise ScorestreamError(msg) from exc
        log.info(
            "exactly-once: transactional id %s, last committed batch %d, published up to %s",
            self.transactional_id,
            self.last_committed,
            self.published,
        )

    def _size_options(self) -> dict[str, int]:
        """librdkafka's message.max.bytes from the topics' limits, unless the user set it."""
        if self.max_message_bytes is None or "message.max.bytes" in self.kafka.options:
            return {}
        return {"message.max.bytes": self.max_message_bytes}

    def _read_last_marker(self) -> dict[str, Any]:
        """The latest marker committed under our transactional id ({} for none). Markers of
        one id share a partition (their key's, or `marker_partition`), so the newest one is
        found by reading back from the end of the partition in growing windows: a partition
        written by one id holds a marker and a commit record per transaction, so the first
        window usually finds it; the whole topic is read only when the id never wrote."""
        from confluent_kafka import Consumer

        consumer = Consumer(
            self.kafka.confluent(
                **{
                    "group.id": f"{self.transactional_id}-markers",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                    # The end of the partition is known from the answer to a fetch that finds
                    # nothing more, which the broker otherwise holds back for 500 ms.
                    "fetch.wait.max.ms": 10,
                }
            )
        )
        try:
            if self.marker_partition is not None:
                partitions = [self.marker_partition]
            else:
                meta = consumer.list_topics(self.marker_topic, timeout=self.timeout_s)
                partitions = sorted(meta.topics[self.marker_topic].partitions)
            for partition in partitions:
                found = self._last_marker_in(consumer, partition)
                if found is not None:
                    return found
        finally:
            consumer.close()
        return {}

    def _last_marker_in(self, consumer: Any, partition: int) -> dict[str, Any] | None:
        from confluent_kafka import TopicPartition

        low, high = consumer.get_watermark_offsets(
            TopicPartition(self.marker_topic, partition), timeout=self.timeout_s
        )
        stop, window = high, MARKER_WINDOW
        while stop > low:
            begin = max(low, stop - window)
            found = self._read_range(consumer, partition, begin, stop)
            if found is not None:
                return found
            stop, window = begin, window * 8
        return None

    def _read_range(
        self, consumer: Any, partition: int, begin: int, stop: int
    ) -> dict[str, Any] | None:
        """The last committed record of our key in offsets [begin, stop) of the partition."""
        from confluent_kafka import KafkaError, TopicPartition

        key = self.transactional_id.encode()
        consumer.assign([TopicPartition(self.marker_topic, partition, begin)])
        last: dict[str, Any] | None = None
        deadline = time.monotonic() + self.timeout_s
        while True:
            if time.monotonic() > deadline:
                msg = (
                    f"reading markers from {self.marker_topic}/{partition} took over "
                    f"{self.timeout_s} s (another transaction open on it holds read_committed "
                    "readers back)"
                )
                raise StackError(msg)
            # poll, not consume(n, timeout): consume waits out its timeout unless n records
            # arrive, which cost every task of every batch a second.
            record = consumer.poll(0.5)
            if record is None:
                continue
            err = record.error()
            if err is not None:
                # The end under read_committed is the last stable offset: before `stop`
                # only while another id's transaction is open there; wait for it.
                if err.code() == KafkaError._PARTITION_EOF and record.offset() >= stop:
                    return last
                continue
            if record.offset() >= stop:
                return last
            if record.key() == key:
                last = json.loads(record.value() or b"{}")

    def coverage(self, batch_id: int, start: Offsets | None, end: Offsets | None) -> Coverage:
        """What of batch `batch_id` ([start, end) per partition) is still to publish."""
        if self._producer is None:
            self._start()
        return coverage(batch_id, start, end, self.last_committed, self.published)

    def publish(
        self,
        batch_id: int,
        records: Iterable[Record],
        end: Offsets | None = None,
        extra: dict[str, Any] | None = None,
    ) -> PublishResult:
        """Publish a batch and its marker (with `extra` fields) in one transaction, unless it
        was committed before (by batch id; the caller compares offsets first with
        `coverage`)."""
        from confluent_kafka import KafkaException

        started = time.monotonic()
        if self._producer is None:
            self._start()
        if end is None and batch_id <= self.last_committed:
            log.warning(
                "exactly-once: batch %d was committed before (last %d); replay skipped",
                batch_id,
                self.last_committed,
            )
            return PublishResult(0, True, time.monotonic() - started)
        published = advance(self.published, end)
        producer = self._producer
        count = 0
        try:
            producer.begin_transaction()
            for topic, key, value, headers in records:
                while True:
                    try:
                        producer.produce(topic, value=value, key=key, headers=headers)
                        break
                    except BufferError:
                        producer.poll(0.05)
                count += 1
                if count % 10_000 == 0:
                    producer.poll(0)
            marker: dict[str, Any] = {
                "query": self.transactional_id,
                "batch_id": batch_id,
                "records": count,
            }
            if published is not None:
                marker["end_offsets"] = {
                    t: {str(p): o for p, o in sorted(parts.items())}
                    for t, parts in published.items()
                }
            marker.update(extra or {})
            where = {} if self.marker_partition is None else {"partition": self.marker_partition}
            producer.produce(
                self.marker_topic,
                key=self.transactional_id.encode(),
                value=json.dumps(marker).encode(),
                **where,
            )
            producer.commit_transaction(self.timeout_s)
        except KafkaException as exc:
            self._abort()
            msg = f"transaction of batch {batch_id} failed: {describe_error(exc)}"
            raise StackError(msg) from exc
        except BaseException:
            self._abort()
            raise
        self.last_committed = batch_id
        self.published = published
        self.after_commit(batch_id)
        return PublishResult(count, False, time.monotonic() - started)

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(self.timeout_s)
        except Exception as exc:
            # The next start fences this producer and aborts the transaction anyway.
            log.warning("could not abort the transaction: %s", describe_error(exc))
            self._producer = None

    def flush(self, timeout_s: float) -> None:
        """Send what is queued (the records of an open transaction stay uncommitted)."""
        if self._producer is not None:
            self._producer.flush(timeout_s)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None


CRASH_EXIT_CODE = 75  # what the test hook exits with, so a test tells it from a real failure


def crash_after(batch_id: int | None) -> Callable[[int], None]:
    """The test hook of SCORESTREAM_TEST_CRASH_AFTER_COMMIT: once the transaction of batch
    `batch_id` has committed, the process exits at once (no cleanup, like kill -9), before
    Spark commits the batch to its checkpoint. A no-op for None."""

    def hook(committed: int) -> None:
        if committed == batch_id:
            log.error(
                "exactly-once test hook: exiting after the commit of batch %d, before Spark's "
                "checkpoint commit",
                committed,
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(CRASH_EXIT_CODE)

    return hook
