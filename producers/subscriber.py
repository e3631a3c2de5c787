"""`scorestream consume`: subscribe to the score topic, print records or a running summary."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from scorestream.errors import DataError
from scorestream.kafka import KafkaSettings
from scorestream.producers.encoding import decoder, iso_millis, parse_time


@dataclass
class ScoreSummary:
    """What a subscriber has seen: counts, versions, latencies (arrival - event time)."""

    count: int = 0
    ids: set[str] = field(default_factory=set)
    versions: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    invalid: int = 0

    def add(self, record: dict[str, Any], arrived_s: float) -> None:
        self.count += 1
        self.ids.add(str(record.get("event_id")))
        version = int(record.get("model_version", -1))
        self.versions[version] = self.versions.get(version, 0) + 1
        if record.get("event_time"):
            self.latencies_ms.append((arrived_s - parse_time(str(record["event_time"]))) * 1000)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[index]


def consumer(
    kafka: KafkaSettings,
    topic: str,
    group: str | None = None,
    from_beginning: bool = True,
    isolation: str = "read_uncommitted",
) -> Any:
    """A confluent-kafka consumer subscribed to `topic` (a fresh group unless one is given)."""
    from confluent_kafka import Consumer

    conf = kafka.confluent(
        **{
            "group.id": group or f"scorestream-consume-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": group is not None,
            "isolation.level": isolation,
        }
    )
    c = Consumer(conf)
    c.subscribe([topic])
    return c


def iter_scores(
    kafka: KafkaSettings,
    topic: str,
    until: Callable[[ScoreSummary], bool],
    timeout_s: float,
    summary: ScoreSummary | None = None,
    from_beginning: bool = True,
    fmt: str = "json",
    isolation: str = "read_uncommitted",
) -> Iterator[dict[str, Any]]:
    """Yield decoded score records until `until(summary)` holds or `timeout_s` passes.

    `fmt` is the scorer's output format (json, avro, confluent-avro); Avro timestamps are
    given as ISO-8601 text, as in JSON. `isolation` read_committed hides records of aborted
    transactions (the scorer's --exactly-once mode).
    """
    decode = decoder(fmt)
    seen = summary if summary is not None else ScoreSummary()
    c = consumer(kafka, topic, from_beginning=from_beginning, isolation=isolation)
    deadline = time.monotonic() + timeout_s
    try:
        while not until(seen) and time.monotonic() < deadline:
            for msg in c.consume(num_messages=5000, timeout=0.2):
                if msg.error():
                    continue
                arrived = time.time()
                try:
                    record = decode(msg.value())
                except DataError:
                    seen.invalid += 1
                    continue
                for name in ("event_time", "scored_at"):
                    if isinstance(record.get(name), int):
                        record[name] = iso_millis(record[name])
                seen.add(record, arrived)
                yield record
    finally:
        c.close()
