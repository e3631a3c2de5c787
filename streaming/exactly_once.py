"""`--exactly-once`: each micro-batch is published in one Kafka transaction with a batch marker.

Spark's Kafka sink is at-least-once (a batch replayed after a crash is written again), and no
transactional sink exists upstream (SPARK-28908). So in this mode the driver publishes the batch
itself with a transactional confluent-kafka producer: scores, dead letters and a marker record
`{query, batch_id}` on the marker topic go into one transaction. The transactional id is stable
for a checkpoint (it is derived from Spark's query id, kept in the checkpoint), so a restarted
scorer fences the crashed one (its open transaction is aborted) and reads the last committed
marker: a batch whose id is not above it was already published and is skipped.

Not covered: consumers reading with read_uncommitted (they see aborted records too), and
anything the scorer writes outside Kafka (listeners, metrics) which sees replays again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scorestream import fs
from scorestream.errors import ScorestreamError, StackError
from scorestream.fs import Location
from scorestream.kafka import KafkaSettings, describe_error

log = logging.getLogger(__name__)

# (topic, key, value, headers) as produced.
Record = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]


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
    ) -> None:
        self.kafka = kafka
        # The largest record the topics take (preflight); librdkafka's own default is 1e6.
        self.max_message_bytes = max_message_bytes
        self.marker_topic = marker_topic
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.timeout_s = timeout_s
        self._producer: Any = None
        self.last_committed = -1

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
        self.last_committed = self._read_last_marker()
        log.info(
            "exactly-once: transactional id %s, last committed batch %d",
            self.transactional_id,
            self.last_committed,
        )

    def _size_options(self) -> dict[str, int]:
        """librdkafka's message.max.bytes from the topics' limits, unless the user set it."""
        if self.max_message_bytes is None or "message.max.bytes" in self.kafka.options:
            return {}
        return {"message.max.bytes": self.max_message_bytes}

    def _read_last_marker(self) -> int:
        """The highest batch id committed under our transactional id (-1 for none)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        consumer = Consumer(
            self.kafka.confluent(
                **{
                    "group.id": f"{self.transactional_id}-markers",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                }
            )
        )
        last = -1
        try:
            meta = consumer.list_topics(self.marker_topic, timeout=self.timeout_s)
            partitions = meta.topics[self.marker_topic].partitions
            consumer.assign(
                [TopicPartition(self.marker_topic, p, OFFSET_BEGINNING) for p in partitions]
            )
            pending = set(partitions)
            deadline = time.monotonic() + self.timeout_s
            while pending:
                if time.monotonic() > deadline:
                    msg = f"reading markers from {self.marker_topic} took over {self.timeout_s} s"
                    raise StackError(msg)
                for record in consumer.consume(num_messages=1000, timeout=0.5):
                    err = record.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending.discard(record.partition())
                        continue
                    if record.key() == self.transactional_id.encode():
                        last = max(
                            last, int(json.loads(record.value() or b"{}").get("batch_id", -1))
                        )
        finally:
            consumer.close()
        return last

    def publish(self, batch_id: int, records: Iterable[Record]) -> PublishResult:
        """Publish a batch and its marker in one transaction, unless it was committed before."""
        from confluent_kafka import KafkaException

        started = time.monotonic()
        if self._producer is None:
            self._start()
        if batch_id <= self.last_committed:
            log.warning(
                "exactly-once: batch %d was committed before (last %d); replay skipped",
                batch_id,
                self.last_committed,
            )
            return PublishResult(0, True, time.monotonic() - started)
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
            marker = {"query": self.transactional_id, "batch_id": batch_id, "records": count}
            producer.produce(
                self.marker_topic,
                key=self.transactional_id.encode(),
                value=json.dumps(marker).encode(),
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
        return PublishResult(count, False, time.monotonic() - started)

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(self.timeout_s)
        except Exception as exc:
            # The next start fences this producer and aborts the transaction anyway.
            log.warning("could not abort the transaction: %s", describe_error(exc))
            self._producer = None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None
