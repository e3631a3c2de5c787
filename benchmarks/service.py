"""A plain confluent-kafka consume -> transform -> produce loop, at-least-once (the peers' core).

Written the way a careful engineer would write it without Spark: batched consume, batched
produce, and a consumer offset stored only once every record produced from that batch has
been acknowledged by the broker (so a crash replays, never loses). Offsets are committed by
the client's auto-commit of stored offsets.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from scorestream.kafka import KafkaSettings

# (key, value) pairs to produce to the output topic, and raw records for the dead-letter topic.
Transform = Callable[[Sequence[Any]], tuple[list[tuple[bytes | None, bytes]], list[Any]]]

PRODUCER = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
}


class _Batch:
    """Outstanding deliveries of one consumed batch, and the offsets to store when all landed."""

    def __init__(self, offsets: list[Any]) -> None:
        self.offsets = offsets
        self.pending = 0
        self.failed: str | None = None

    def delivered(self, err: Any, _msg: Any) -> None:
        self.pending -= 1
        if err is not None and self.failed is None:
            self.failed = str(err)


def _next_offsets(messages: Sequence[Any]) -> list[Any]:
    from confluent_kafka import TopicPartition

    last: dict[tuple[str, int], int] = {}
    for m in messages:
        last[(m.topic(), m.partition())] = m.offset()
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def run(
    kafka: KafkaSettings,
    input_topic: str,
    output_topic: str,
    dead_letter_topic: str,
    transform: Transform,
    stop: threading.Event,
    batch_size: int = 5_000,
    group: str | None = None,
    on_ready: Callable[[], None] = lambda: None,
) -> dict[str, int]:
    """Run until `stop` is set; returns counts {in, out, dead}."""
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        kafka.confluent(
            **{
                "group.id": group or f"bench-peer-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "fetch.wait.max.ms": 10,
                "queued.min.messages": 200_000,
            }
        )
    )
    producer = Producer(kafka.confluent(**PRODUCER))
    outstanding: deque[_Batch] = deque()
    counts = {"in": 0, "out": 0, "dead": 0}
    consumer.subscribe([input_topic])
    on_ready()
    try:
        while not stop.is_set():
            # Block for the first record only, then take what is already there: full batches
            # at saturation, no waiting for a batch to fill at low rates.
            first = consumer.consume(num_messages=1, timeout=0.1)
            more = consumer.consume(num_messages=batch_size - 1, timeout=0) if first else []
            messages = [m for m in first + more if not m.error()]
            if messages:
                out, dead = transform(messages)
                batch = _Batch(_next_offsets(messages))
                batch.pending = len(out) + len(dead)
                outstanding.append(batch)
                for key, value in out:
                    _produce(producer, output_topic, key, value, batch.delivered)
                for m in dead:
                    _produce(producer, dead_letter_topic, m.key(), m.value(), batch.delivered)
                counts["in"] += len(messages)
                counts["out"] += len(out)
                counts["dead"] += len(dead)
            producer.poll(0)
            while outstanding and outstanding[0].pending <= 0:
                done = outstanding.popleft()
                if done.failed is not None:
                    msg = f"producing to {output_topic} failed: {done.failed}"
                    raise RuntimeError(msg)
                consumer.store_offsets(offsets=done.offsets)
    finally:
        producer.flush(30)
        while outstanding and outstanding[0].pending <= 0:
            consumer.store_offsets(offsets=outstanding.popleft().offsets)
        consumer.close()  # commits the stored offsets
    return counts


def _produce(
    producer: Any, topic: str, key: bytes | None, value: bytes, on_delivery: Callable[..., None]
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.01)


def service_args(prog: str, about: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=about)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input-topic", required=True)
    p.add_argument("--output-topic", required=True)
    p.add_argument("--dlq-topic", required=True)
    p.add_argument("--batch-size", type=int, default=5_000)
    return p


def serve(args: argparse.Namespace, transform: Transform) -> int:
    """Run a peer service until SIGTERM; report ready/done as JSON lines on stdout."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def ready() -> None:
        print(json.dumps({"event": "ready", "t": time.time()}), flush=True)

    counts = run(
        KafkaSettings(bootstrap=args.bootstrap),
        args.input_topic,
        args.output_topic,
        args.dlq_topic,
        transform,
        stop,
        batch_size=args.batch_size,
        on_ready=ready,
    )
    print(json.dumps({"event": "done", "t": time.time(), **counts}), flush=True)
    sys.stdout.flush()
    return 0
