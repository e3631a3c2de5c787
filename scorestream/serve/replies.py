"""One producer and one shared reply consumer: events go out to the input topic, the scorer's
scores and dead letters come back and resolve the futures of the requests waiting for them.

The scorer is not told about requests. It copies neither keys nor headers of an input record
into its output; what it does write on every score and dead letter is the input record's
partition and offset (`scorestream.source.partition` / `.offset` headers), and the event id
(score key and value) or the original key (dead letter). So a reply is matched on the
(partition, offset) the producer's delivery report gave for the request's record, and checked
against the event id or key it was sent with: exact even when two requests carry the same
event id, and a replayed batch's second copy finds nobody waiting and is ignored.

One module (about 360 lines) because the shared consumer, the waiters and the delivery
callbacks share one lock and one table of (partition, offset) -> waiter: the matching rule
above holds only with all three in view.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scorestream.errors import ScorestreamError
from scorestream.kafka import KafkaSettings, describe_error, ensure_topics
from scorestream.serve.settings import ServeSettings
from scorestream.streaming.scoring import H_MESSAGE, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC

log = logging.getLogger(__name__)

# Headers of a request's input record: where the answer is published and the request's own id
# (for tracing; the match is on what the scorer writes back, see the module docstring).
H_REPLY_TO = "scorestream.reply.to"
H_CORRELATION = "scorestream.correlation.id"

# A reply can in principle arrive before the delivery report of its request is served; such
# replies wait this long for it. Others' replies are only kept while a delivery is outstanding.
EARLY_TTL_S = 5.0


class PublishError(ScorestreamError):
    """An event could not be published to the input topic."""


@dataclass(frozen=True)
class Reply:
    """What came back for one event: a score record, or a dead letter's reason and message."""

    record: Mapping[str, Any] | None = None
    reason: str | None = None
    message: str | None = None

    @property
    def scored(self) -> bool:
        return self.record is not None


@dataclass
class Waiter:
    """One published event waiting for its reply."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Reply]
    event_id: str | None
    key: bytes
    position: tuple[int, int] | None = None  # (partition, offset) once delivered
    abandoned: bool = False  # the request gave up (timeout): ignore its reply


def _resolve(waiter: Waiter, value: Reply | BaseException) -> None:
    def settle() -> None:
        if waiter.future.done():
            return
        if isinstance(value, BaseException):
            waiter.future.set_exception(value)
        else:
            waiter.future.set_result(value)

    waiter.loop.call_soon_threadsafe(settle)


@dataclass
class _Early:
    reply: Reply
    check: str  # event id (score) or key (dead letter) the reply carries
    seen_s: float


@dataclass
class RouterStats:
    """What the reply consumer read, shown by /readyz: replies matched to a waiting request,
    records ignored (no source position, another input topic, nobody waiting) and score
    records it could not decode (another --score-format than the scorer's)."""

    replies_matched: int = 0
    replies_ignored: int = 0
    undecodable: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {
                "matched": self.replies_matched,
                "ignored": self.replies_ignored,
                "undecodable": self.undecodable,
            }


class ReplyRouter:
    """Publishes request events and routes the scorer's replies back to them.

    No network I/O in `__init__`; `start()` connects, `close()` stops both threads.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: ServeSettings,
        decode: Callable[[bytes], dict[str, Any]],
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.decode = decode
        self.stats = RouterStats()
        self._lock = threading.Lock()
        self._waiting: dict[tuple[int, int], Waiter] = {}
        self._early: dict[tuple[int, int], _Early] = {}
        self._undelivered = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._producer: Any = None
        self._consumer: Any = None
        self.last_output_s: float | None = None  # wall-clock time of the newest reply seen
        self.failure: str | None = None  # why the consumer thread stopped, if it did

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        from confluent_kafka import Consumer, Producer

        s = self.settings
        if s.create_topics:
            ensure_topics(
                self.kafka,
                [s.input_topic, s.output_topic, s.dead_letters],
                partitions=s.topic_partitions,
                timeout_s=timeout_s,
            )
        # Latency first: a request waits for its own record, so no batching delay to speak of.
        self._producer = Producer(
            self.kafka.confluent(
                **{"acks": "all", "enable.idempotence": True, "linger.ms": 1}, log_level=0
            )
        )
        self._consumer = Consumer(
            self.kafka.confluent(
                **{
                    # Assigned, never subscribed: no group coordination, nothing committed.
                    "group.id": f"scorestream-serve-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 10,
                    "isolation.level": "read_uncommitted",
                },
                log_level=0,
            )
        )
        self._assign_at_end(timeout_s)
        # Warm the producer (connection, metadata, idempotent producer id) before requests.
        self._producer.list_topics(topic=s.input_topic, timeout=timeout_s)
        for target, name in ((self._consume, "serve-replies"), (self._deliver, "serve-delivery")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _assign_at_end(self, timeout_s: float) -> None:
        """Read both reply topics from their newest record on: what is older cannot answer a
        request of this process, and the newest record tells when the scorer last wrote."""
        from confluent_kafka import TopicPartition

        s = self.settings
        meta = self._consumer.list_topics(timeout=timeout_s)
        assignment = []
        for topic in (s.output_topic, s.dead_letters):
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                msg = f"reply topic {topic!r} does not exist on {self.kafka.bootstrap}"
                raise ScorestreamError(msg)
            for partition in info.partitions:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s
                )
                assignment.append(TopicPartition(topic, partition, max(low, high - 1)))
        self._consumer.assign(assignment)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._producer is not None:
            self._producer.flush(5)
        if self._consumer is not None:
            self._consumer.close()

    # -- requests ----------------------------------------------------------------------------

    def submit(
        self, events: Sequence[tuple[str | None, bytes]], loop: asyncio.AbstractEventLoop
    ) -> list[Waiter]:
        """Publish `(event id, JSON bytes)` pairs; returns one waiter per event, in order.

        The key is the event id (as the project's producers key events), or a fresh
        correlation id for an event without one: its dead letter carries it back.
        """
        s = self.settings
        waiters: list[Waiter] = []
        for event_id, value in events:
            correlation = uuid.uuid4().hex
            key = (event_id if event_id is not None else f"req-{correlation}").encode()
            waiter = Waiter(loop, loop.create_future(), event_id, key)
            with self._lock:
                self._undelivered += 1
            try:
                self._producer.produce(
                    s.input_topic,
                    value=value,
                    key=key,
                    headers=[(H_REPLY_TO, s.output_topic.encode()), (H_CORRELATION, correlation)],
                    on_delivery=self._on_delivery(waiter),
                )
            except Exception as exc:  # BufferError (queue full), KafkaException
                with self._lock:
                    self._undelivered -= 1
                self.abandon(waiters)
                msg = f"cannot publish to {s.input_topic!r}: {describe_error(exc)}"
                raise PublishError(msg) from exc
            waiters.append(waiter)
        return waiters

    def abandon(self, waiters: Sequence[Waiter]) -> None:
        """The request stopped waiting (timeout, error): forget its events."""
        with self._lock:
            for w in waiters:
                w.abandoned = True
                if w.position is not None:
                    self._waiting.pop(w.position, None)

    def _on_delivery(self, waiter: Waiter) -> Callable[[Any, Any], None]:
        def delivered(err: Any, msg: Any) -> None:
            with self._lock:
                self._undelivered -= 1
                if err is not None:
                    msg = f"cannot publish to {self.settings.input_topic!r}: {err.str()}"
                    failed: Reply | BaseException = PublishError(msg)
                elif waiter.abandoned:
                    return
                else:
                    waiter.position = (msg.partition(), msg.offset())
                    early = self._early.pop(waiter.position, None)
                    if early is None or not self._belongs(waiter, early.check):
                        self._waiting[waiter.position] = waiter
                        return
                    failed = early.reply
            _resolve(waiter, failed)

        return delivered

    # -- threads -----------------------------------------------------------------------------

    def _deliver(self) -> None:
        """Serve delivery reports (they register the waiters) as soon as they arrive."""
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _consume(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(num_messages=1000, timeout=0.1)
                for m in messages:
                    if m.error() is None:
                        self._route(m)
                self._prune()
        except Exception as exc:  # readiness reports it; requests then time out
            self.failure = describe_error(exc)
            log.exception("the reply consumer stopped")

    def _route(self, m: Any) -> None:
        s = self.settings
        stamp = m.timestamp()[1] / 1000 if m.timestamp()[0] else time.time()
        self.last_output_s = max(self.last_output_s or 0.0, stamp)
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in m.headers() or []}
        try:
            position = (int(headers[H_PARTITION]), int(headers[H_OFFSET]))
        except (KeyError, ValueError):
            self._count(ignored=True)
            return
        if m.topic() == s.output_topic:
            try:
                record = self.decode(m.value())
            except Exception:
                self._count(undecodable=True)
                return
            reply = Reply(record=record)
            check = str(record.get("event_id"))
        else:
            if headers.get(H_TOPIC) != s.input_topic:
                self._count(ignored=True)
                return
            reply = Reply(reason=headers.get(H_REASON), message=headers.get(H_MESSAGE))
            check = (m.key() or b"").decode("utf-8", "replace")
        with self._lock:
            waiter = self._waiting.get(position)
            if waiter is not None and self._belongs(waiter, check):
                del self._waiting[position]
            else:
                waiter = None
                if self._undelivered > 0:
                    self._early[position] = _Early(reply, check, time.monotonic())
        if waiter is None:
            self._count(ignored=True)
            return
        self._count()
        _resolve(waiter, reply)

    @staticmethod
    def _belongs(waiter: Waiter, check: str) -> bool:
        # Another input topic's scorer writing to the same score topic has other offsets'
        # events: the event id (or key, for a dead letter) tells them apart.
        return check in (waiter.event_id, waiter.key.decode())

    def _prune(self) -> None:
        if not self._early:
            return
        cutoff = time.monotonic() - EARLY_TTL_S
        with self._lock:
            for position in [p for p, e in self._early.items() if e.seen_s < cutoff]:
                del self._early[position]

    def _count(self, ignored: bool = False, undecodable: bool = False) -> None:
        with self.stats.lock:
            if undecodable:
                self.stats.undecodable += 1
            elif ignored:
                self.stats.replies_ignored += 1
            else:
                self.stats.replies_matched += 1

    # -- health ------------------------------------------------------------------------------

    def broker_reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            meta = self._producer.list_topics(topic=self.settings.input_topic, timeout=timeout_s)
        except Exception:
            return False
        return bool(meta.brokers)

    def consuming(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)
