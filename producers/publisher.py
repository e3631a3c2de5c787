"""`scorestream produce`: publish synthetic feature events with confluent-kafka at a given rate."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorestream.contract.synthetic import Drift, iter_events
from scorestream.errors import StackError
from scorestream.kafka import KafkaSettings, describe_error
from scorestream.producers.encoding import encoder


@dataclass(frozen=True)
class ProduceSettings:
    """What to publish."""

    topic: str = "features"
    count: int = 10_000
    rate: float = 0.0  # events per second; 0 = as fast as the broker takes them
    seed: int = 7
    fmt: str = "json"  # json, avro or confluent-avro
    drift: Drift | None = None
    schema: Path | None = None  # Avro writer schema (default: schemas/event.avsc)
    schema_id: int = 1  # written in the Confluent header


class Publisher:
    """A thin confluent-kafka producer: no I/O in __init__, flush on exit, our own errors."""

    def __init__(self, kafka: KafkaSettings, **overrides: Any) -> None:
        self.config = kafka.confluent(
            **{
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "compression.type": "lz4",
                **overrides,
            }
        )
        self.bootstrap = kafka.bootstrap
        self._producer: Any = None
        self.errors: list[str] = []
        self.delivered = 0

    def __enter__(self) -> Publisher:
        from confluent_kafka import Producer

        self._producer = Producer(self.config)
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.delivered += 1

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        if self._producer is None:
            return
        remaining = self._producer.flush(timeout_s)
        if remaining or self.errors:
            first = self.errors[0] if self.errors else f"{remaining} messages still queued"
            msg = (
                f"publishing to {self.bootstrap} failed for "
                f"{len(self.errors) + remaining} messages: {first}"
            )
            raise StackError(msg)


def publish(
    kafka: KafkaSettings,
    settings: ProduceSettings,
    events: Iterable[Mapping[str, Any]] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> int:
    """Publish events (synthetic by default), paced to `rate`; returns the count delivered."""
    encode = encoder(settings.fmt, settings.schema, settings.schema_id)
    source = (
        events
        if events is not None
        else iter_events(settings.count, settings.seed, drift=settings.drift)
    )
    started = time.monotonic()
    sent = 0
    try:
        with Publisher(kafka) as pub:
            for event in source:
                body = dict(event)
                body.setdefault("event_time", int(time.time() * 1000))
                pub.send(settings.topic, encode(body), key=str(body["event_id"]).encode())
                sent += 1
                if settings.rate > 0:
                    ahead = sent / settings.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)  # pacing to the requested rate, not synchronisation
                if progress is not None and sent % 1000 == 0:
                    progress(sent, time.monotonic() - started)
        if progress is not None:
            progress(sent, time.monotonic() - started)
            return pub.delivered
        return pub.delivered
    except KeyboardInterrupt:
        print(f"\ninterrupted after {sent} events", file=sys.stderr)
        raise
    except Exception as exc:
        if isinstance(exc, StackError):
            raise
        msg = f"cannot publish to {kafka.bootstrap}: {describe_error(exc)}"
        raise StackError(msg) from exc
