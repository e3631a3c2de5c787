"""The benchmark's events: the producers' synthetic transactions, encoded once, fed to everyone.

Every contender reads the same events: the pre-filled topics (JSON and Avro encodings of the
same rows), the Parquet file the Spark batch contender scores, and the paced latency input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scorestream.avro import EVENT_SCHEMA, avro_encoder
from scorestream.contract.synthetic import iter_events
from scorestream.errors import StackError
from scorestream.kafka import KafkaSettings, describe_error
from scorestream.producers.encoding import encode_json, iso_millis

# Output records and fill records go through the same producer settings everywhere.
FILL_PRODUCER = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
}


def encoder(fmt: str) -> Callable[[dict[str, Any]], bytes]:
    if fmt == "json":
        return encode_json
    return avro_encoder(confluent=False, schema=EVENT_SCHEMA)


class _Producer:
    """A confluent-kafka producer that counts deliveries and fails loudly at flush."""

    def __init__(self, kafka: KafkaSettings, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self.producer = Producer(kafka.confluent(**{**FILL_PRODUCER, **overrides}))
        self.errors: list[str] = []
        self.delivered = 0
        self.bootstrap = kafka.bootstrap

    def _done(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.delivered += 1

    def send(self, topic: str, value: bytes, key: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._done)
                return
            except BufferError:
                self.producer.poll(0.05)

    def flush(self, timeout_s: float = 120.0) -> None:
        left = self.producer.flush(timeout_s)
        if left or self.errors:
            first = self.errors[0] if self.errors else f"{left} messages still queued"
            msg = f"publishing benchmark events to {self.bootstrap} failed: {first}"
            raise StackError(msg)


def fill(
    kafka: KafkaSettings,
    topics: dict[str, str],
    count: int,
    seed: int,
    parquet: Path | None = None,
) -> dict[str, float]:
    """Write `count` events to every topic of {format: topic} (and a Parquet copy); seconds."""
    started = time.monotonic()
    encoders = {fmt: encoder(fmt) for fmt in topics}
    stamp = int(time.time() * 1000)
    writer = _ParquetRows(parquet) if parquet is not None else None
    prod = _Producer(kafka)
    try:
        for event in iter_events(count, seed):
            event["event_time"] = stamp
            key = str(event["event_id"]).encode()
            for fmt, topic in topics.items():
                prod.send(topic, encoders[fmt](event), key)
            prod.producer.poll(0)
            if writer is not None:
                writer.add(event)
        prod.flush()
    except StackError:
        raise
    except Exception as exc:
        msg = f"cannot fill the benchmark topics on {kafka.bootstrap}: {describe_error(exc)}"
        raise StackError(msg) from exc
    finally:
        if writer is not None:
            writer.close()
    if prod.delivered != count * len(topics):
        msg = f"filled {prod.delivered} records, expected {count * len(topics)}"
        raise StackError(msg)
    return {"fill_s": time.monotonic() - started}


class _ParquetRows:
    """Event dicts -> a Parquet file, in row groups, so memory stays flat for a million rows."""

    CHUNK = 100_000

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self.writer: Any = None

    def add(self, event: dict[str, Any]) -> None:
        self.rows.append(event)
        if len(self.rows) >= self.CHUNK:
            self._write()

    def _write(self) -> None:
        import datetime as dt

        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        cols: dict[str, list[Any]] = {k: [r[k] for r in self.rows] for k in self.rows[0]}
        cols["event_time"] = [
            dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC) for ms in cols["event_time"]
        ]
        table = pa.table(cols)
        table = table.set_column(
            table.schema.get_field_index("event_time"),
            "event_time",
            table.column("event_time").cast(pa.timestamp("us", tz="UTC")),
        )
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(str(self.path), table.schema)
        self.writer.write_table(table)
        self.rows = []

    def close(self) -> None:
        self._write()
        if self.writer is not None:
            self.writer.close()


def _json_template(event: dict[str, Any]) -> bytes:
    """The event's JSON without event_time, to be completed at send time (see paced())."""
    body = {k: v for k, v in event.items() if k != "event_time"}
    return encode_json(body)


def paced_producer(kafka: KafkaSettings, topic: str) -> _Producer:
    """The producer of a latency run's paced phases, connected before any phase is timed.

    A producer made just before a phase stalls its first events by hundreds of ms while it
    connects, fetches the topic's metadata and acquires its idempotent producer id (retried
    with backoff while the coordinator loads): those events were stamped before the wait and
    showed as a ~360 ms p99 even for a pass-through. One producer serves every phase of a run,
    and its metadata is fetched here; the unmeasured warm-up phase then gets it its id.
    """
    prod = _Producer(kafka, **{"linger.ms": 0, "compression.type": "none"})
    prod.producer.list_topics(topic, timeout=30)
    return prod


def paced(
    kafka: KafkaSettings,
    topic: str,
    fmt: str,
    count: int,
    rate: float,
    seed: int,
    producer: _Producer | None = None,
) -> dict[str, float]:
    """Publish `count` events at `rate` per second in 10 ms slices, each stamped when sent.

    The event time is the wall clock at the moment the slice is handed to the producer (no
    linger), so the latency a subscriber measures includes the whole way through Kafka.
    Pass the run's `paced_producer` so no phase pays for a producer's start.
    """
    events = list(iter_events(count, seed))
    templates = [_json_template(e) for e in events] if fmt == "json" else []
    avro = encoder(fmt) if fmt != "json" else None
    keys = [str(e["event_id"]).encode() for e in events]
    per_slice = max(1, round(rate / 100))
    prod = producer or paced_producer(kafka, topic)
    started = time.monotonic()
    late = 0.0
    for i in range(0, count, per_slice):
        due = started + i / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # pacing the producer to the requested rate
        else:
            late = max(late, -wait)
        now_ms = int(time.time() * 1000)
        stamp = b'{"event_time":"' + iso_millis(now_ms).encode() + b'",'
        for j in range(i, min(i + per_slice, count)):
            if avro is not None:
                events[j]["event_time"] = now_ms
                value = avro(events[j])
            else:
                value = stamp + templates[j][1:]
            prod.send(topic, value, keys[j])
        prod.producer.poll(0)
    prod.flush()
    elapsed = time.monotonic() - started
    return {"sent": float(count), "seconds": elapsed, "max_behind_s": late}


def event_ids(count: int, seed: int) -> Iterator[str]:
    for event in iter_events(count, seed):
        yield str(event["event_id"])
