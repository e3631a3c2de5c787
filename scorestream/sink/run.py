"""The sink loop: consume a batch of score records, upsert it in one database transaction, and
only then commit the consumer offsets (the Kafka Connect JDBC sink's order).

A crash between the two commits replays the batch on restart; the upsert by event id makes the
replay rewrite the same rows, so the table holds one row per event and each row is the newest
score record of its event on the topic.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scorestream.errors import ScorestreamError
from scorestream.kafka import KafkaSettings, describe_error, ensure_topics, topic_partitions
from scorestream.sink.db import Row, Table
from scorestream.sink.target import Target
from scorestream.streaming.scoring import H_MESSAGE, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkSettings:
    """What the sink reads and where it writes (the target's password is never shown)."""

    target: Target
    table: str = "scores"
    topic: str = "scores"
    group: str = ""  # empty: scorestream-sink-<table>
    dead_letter_topic: str = ""  # empty: <topic>.sink.dlq
    score_format: str = "json"
    batch_size: int = 1_000
    poll_timeout_s: float = 1.0
    retries: int = 5  # database reconnects per batch before giving up

    @property
    def group_id(self) -> str:
        return self.group or f"scorestream-sink-{self.table}"

    @property
    def dead_letters(self) -> str:
        return self.dead_letter_topic or f"{self.topic}.sink.dlq"


@dataclass
class SinkTotals:
    batches: int = 0
    records: int = 0
    rows: int = 0  # rows upserted (after collapsing one batch's repeats of an event)
    dead_lettered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def to_row(message: Any, decode: Callable[[bytes], dict[str, Any]]) -> Row | tuple[str, str]:
    """A score record as a row, or (reason, message) when it is not a usable score record."""
    try:
        record = decode(message.value())
    except Exception as exc:
        return "DECODE_ERROR", describe_error(exc)[:300]
    event_id, score = record.get("event_id"), record.get("score")
    if event_id is None or score is None:
        missing = "event_id" if event_id is None else "score"
        return "MISSING_FIELD", f"score record has no {missing}"
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return "WRONG_TYPE", f"score {score!r} of event {event_id!r} is not a finite number"
    version = record.get("model_version")
    prediction = record.get("prediction")
    return Row(
        event_id=str(event_id),
        score=float(score),
        prediction=None if prediction is None else float(prediction),
        model_version=None if version is None else int(version),
        event_time=None if record.get("event_time") is None else str(record["event_time"]),
        scored_at=None if record.get("scored_at") is None else str(record["scored_at"]),
        kafka_partition=message.partition(),
        kafka_offset=message.offset(),
    )


class Sink:
    """Runs the loop until `stop()`; no I/O before `run()`."""

    def __init__(self, kafka: KafkaSettings, settings: SinkSettings) -> None:
        from scorestream.producers.encoding import decoder

        self.kafka = kafka
        self.settings = settings
        self.decode = decoder(settings.score_format)
        self.table = Table(settings.target, settings.table)
        self.totals = SinkTotals()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        from confluent_kafka import Consumer, Producer

        s = self.settings
        self._connect()
        # The dead-letter topic exists before a bad record needs it, like the scorer's own.
        ensure_topics(
            self.kafka, [s.dead_letters], partitions=topic_partitions(self.kafka, s.topic) or 1
        )
        consumer = Consumer(
            self.kafka.confluent(
                **{
                    "group.id": s.group_id,
                    "enable.auto.commit": False,  # committed after the database commit only
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",  # an --exactly-once scorer's view
                },
                log_level=0,
            )
        )
        dead = Producer(self.kafka.confluent(**{"acks": "all", "enable.idempotence": True}))
        consumer.subscribe([s.topic])
        try:
            while not self._stop.is_set():
                batch = consumer.consume(num_messages=s.batch_size, timeout=s.poll_timeout_s)
                messages = []
                for m in batch:
                    err = m.error()
                    if err is None:
                        messages.append(m)
                    elif err.fatal():
                        msg = f"consuming {s.topic!r} failed: {err.str()}"
                        raise ScorestreamError(msg)
                if messages:
                    self._write(messages, consumer, dead)
        finally:
            consumer.close()
            dead.flush(10)
            self.table.close()

    def _write(self, messages: list[Any], consumer: Any, dead: Any) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        s = self.settings
        rows: dict[str, Row] = {}
        bad: list[tuple[Any, str, str]] = []
        for m in messages:
            row = to_row(m, self.decode)
            if isinstance(row, Row):
                # Within a batch the newest record of an event wins, as across batches; one
                # statement may not touch a row twice (PostgreSQL refuses it).
                rows.pop(row.event_id, None)
                rows[row.event_id] = row
            else:
                bad.append((m, *row))
        if bad:
            self._dead_letter(dead, bad)
        self._upsert(list(rows.values()))
        ends: dict[tuple[str, int], int] = {}
        for m in messages:
            ends[(m.topic(), m.partition())] = max(
                ends.get((m.topic(), m.partition()), -1), m.offset()
            )
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in ends.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partitions: the next owner replays these records, and the
            # upsert makes that harmless.
            log.warning(
                "offset commit failed (%s); the batch will be replayed", describe_error(exc)
            )
        with self.totals.lock:
            self.totals.batches += 1
            self.totals.records += len(messages)
            self.totals.rows += len(rows)
            self.totals.dead_lettered += len(bad)
        log.info(
            "batch: %d records, %d rows upserted into %s, %d dead-lettered, offsets %s",
            len(messages),
            len(rows),
            s.table,
            len(bad),
            {f"{t}/{p}": o for (t, p), o in sorted(ends.items())},
        )

    def _dead_letter(self, dead: Any, bad: list[tuple[Any, str, str]]) -> None:
        s = self.settings
        for m, reason, message in bad:
            headers = [
                (H_REASON, reason.encode()),
                (H_MESSAGE, message.encode()),
                (H_TOPIC, m.topic().encode()),
                (H_PARTITION, str(m.partition()).encode()),
                (H_OFFSET, str(m.offset()).encode()),
            ]
            dead.produce(s.dead_letters, value=m.value(), key=m.key(), headers=headers)
        # On Kafka before the offsets move: a crash repeats a dead letter, never loses one.
        if dead.flush(30) > 0:
            msg = f"cannot publish {len(bad)} dead letters to {s.dead_letters!r}"
            raise ScorestreamError(msg)

    def _connect(self) -> None:
        try:
            self.table.connect()
        except Exception as exc:
            what = "cannot open"
            raise self._failure(what, exc) from None

    def _upsert(self, rows: list[Row]) -> None:
        attempt = 0
        while True:
            try:
                self.table.upsert(rows)
                return
            except Exception as exc:
                attempt += 1
                if not Table.retryable(exc) or attempt > self.settings.retries:
                    what = "cannot write to"
                    raise self._failure(what, exc) from None
                wait = min(10.0, 0.5 * 2 ** (attempt - 1))
                log.warning(
                    "database error (%s); reconnecting in %.1f s (%d of %d)",
                    self.settings.target.scrub(describe_error(exc)),
                    wait,
                    attempt,
                    self.settings.retries,
                )
                self._stop.wait(wait)  # back-off before the reconnect, not synchronisation
                try:
                    self.table.connect()
                except Exception:
                    log.debug("reconnect failed", exc_info=False)

    def _failure(self, what: str, exc: BaseException) -> ScorestreamError:
        # `from None`: the driver's exception may carry the connection string.
        t = self.settings.target
        msg = (
            f"{what} table {self.settings.table!r} in the {t.describe()}: "
            f"{t.scrub(describe_error(exc))}"
        )
        return ScorestreamError(msg)
