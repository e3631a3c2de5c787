"""`scorestream demo`: broker, training, scorer, producer and subscriber end to end, then stop."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream.kafka import KafkaSettings, ensure_topics, topic_partitions
from scorestream.monitoring.settings import MonitorSettings
from scorestream.paths import STATE_ROOT
from scorestream.progress import Progress
from scorestream.signals import interrupt_on_sigterm

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INPUT, OUTPUT = "features", "scores"


@dataclass(frozen=True)
class DemoSettings:
    """The demo's size and where it keeps its state."""

    events: int = 20_000
    rate: float = 0.0
    state: Path = STATE_ROOT
    port: int = 9092
    jvm_log_level: str = "ERROR"  # Spark's own messages (WARN with --log-level DEBUG)
    keep: bool = False
    serve_port: int = 8000  # with keep: the HTTP scoring service (scorestream serve)
    train_rows: int = 30_000
    timeout_s: float = 600.0
    monitoring: MonitorSettings = field(default_factory=MonitorSettings)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _end_offsets(kafka: KafkaSettings, topic: str) -> str:
    """The current end offset of each partition, as Spark's startingOffsets JSON."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(kafka.confluent(**{"group.id": "scorestream-demo-offsets"}))
    deadline = time.monotonic() + 30
    try:
        parts = topic_partitions(kafka, topic)
        ends: dict[str, int] = {}
        while len(ends) < parts:
            for p in range(parts):
                try:
                    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                except KafkaException:
                    # Leadership can still move right after a broker start; ask again.
                    if time.monotonic() > deadline:
                        raise
                    continue
                ends[str(p)] = high
    finally:
        consumer.close()
    return json.dumps({topic: ends})


def run_demo(settings: DemoSettings) -> int:
    from scorestream.contract.synthetic import SPEC
    from scorestream.models.train import TrainSettings, synthetic_frame, train
    from scorestream.producers.publisher import ProduceSettings, publish
    from scorestream.producers.subscriber import ScoreSummary, iter_scores
    from scorestream.serve.server import Background
    from scorestream.serve.settings import ServeSettings
    from scorestream.spark import SparkSettings, session
    from scorestream.stack import LocalKafka, StackSettings
    from scorestream.streaming.job import Scorer
    from scorestream.streaming.monitor import ScorerMonitor
    from scorestream.streaming.runner import MicroBatch, QueryRunner
    from scorestream.streaming.settings import ScorerSettings

    interrupt_on_sigterm()
    stack = LocalKafka(StackSettings(state_dir=settings.state / "stack", port=settings.port))
    started_stack = not stack.running()
    scorer: Scorer | None = None
    spark: SparkSession | None = None
    monitor: ScorerMonitor | None = None
    runner: QueryRunner | None = None
    service: Background | None = None
    summary, status = "", 1
    try:
        _say(
            f"[1/5] Kafka on {stack.settings.bootstrap} "
            f"({'starting' if started_stack else 'already running'}) ..."
        )
        stack.up()
        kafka = stack.kafka
        _say("[2/5] Spark and training the default model ...")
        spark = session(SparkSettings(log_level=settings.jvm_log_level))
        registry = settings.state / "registry"
        seed = int(time.time()) % 1_000_000
        entry = train(
            spark,
            synthetic_frame(spark, settings.train_rows, seed),
            SPEC,
            TrainSettings(registry=registry, seed=seed),
            fingerprint=f"synthetic:rows={settings.train_rows}:seed={seed}",
            source="synthetic",
        )
        ensure_topics(kafka, [INPUT, OUTPUT, f"{INPUT}.dlq"], partitions=2)
        _say(f"[3/5] starting the scorer with model v{entry.version} ...")
        monitor = ScorerMonitor(spark, settings.monitoring)
        scorer = Scorer(
            spark,
            kafka,
            ScorerSettings(
                input_topic=INPUT,
                output_topic=OUTPUT,
                registry=registry,
                checkpoint=settings.state / "checkpoints" / f"demo-{seed}",
                starting_offsets=_end_offsets(kafka, INPUT),
            ),
            listeners=[monitor],
        )
        monitor.attach(scorer)
        _say(f"      Prometheus metrics on {monitor.url}")
        runner = QueryRunner(MicroBatch(scorer), closers=[monitor.close])
        runner.start(ready_timeout_s=120.0)
        _say(f"[4/5] publishing {settings.events} events to {INPUT}, reading {OUTPUT} ...")
        produced = {"n": 0}
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                publish(
                    kafka,
                    ProduceSettings(
                        topic=INPUT, count=settings.events, rate=settings.rate, seed=seed
                    ),
                    progress=lambda sent, _t: produced.__setitem__("n", sent),
                )
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)

        t0 = time.time()
        producer = threading.Thread(target=produce, name="demo-producer", daemon=True)
        producer.start()
        prefix = f"evt-{seed}-"
        mine = ScoreSummary()
        last_arrival = t0
        line = Progress()
        everything = ScoreSummary()

        def finished(_seen: ScoreSummary) -> bool:
            assert scorer is not None
            scorer.raise_if_failed()  # a failed query ends the demo at once, with its reason
            if failure:
                raise failure[0]
            return mine.count >= settings.events

        for record in iter_scores(
            kafka, OUTPUT, finished, settings.timeout_s, everything, from_beginning=True
        ):
            if str(record.get("event_id", "")).startswith(prefix):
                mine.add(record, time.time())
                last_arrival = time.time()
            line.update(
                f"  published {produced['n']}/{settings.events}  scored "
                f"{mine.count}/{settings.events}  dead-lettered {scorer.totals.dead_lettered}"
            )
        producer.join(timeout=60)
        if failure:
            raise failure[0]
        elapsed = max(last_arrival - t0, 1e-9)
        line.done(
            f"  published {produced['n']}/{settings.events}  scored "
            f"{mine.count}/{settings.events}  dead-lettered {scorer.totals.dead_lettered}"
        )
        versions = ",".join(f"v{v}" for v in sorted(mine.versions)) or f"v{entry.version}"
        summary = (
            f"scored {len(mine.ids)}/{settings.events} events in {elapsed:.1f} s "
            f"({mine.count / elapsed:.0f} events/s), latency p50 {mine.percentile(50):.0f} ms "
            f"p99 {mine.percentile(99):.0f} ms, model {versions}"
        )
        if settings.keep:
            print(summary, flush=True)
            _say("[5/5] keeping the stack and the scorer running; Ctrl-C stops them")
            _say(
                f"      kafka {kafka.bootstrap}, topics {INPUT} -> {OUTPUT}; "
                "try: scorestream produce --count 1000"
            )
            _say(f"      metrics {monitor.url} (Prometheus/Grafana: docs/monitoring.md)")
            service = Background(
                kafka,
                ServeSettings(input_topic=INPUT, output_topic=OUTPUT, port=settings.serve_port),
            )
            service.start()
            _say(
                f"      HTTP scoring {service.url}/v1/score (docs {service.url}/docs); try: "
                f"curl -s {service.url}/v1/score -H 'content-type: application/json' "
                """-d '{"event_id": "e1", "event_time": "2026-11-21T10:15:00Z", "amount": 56.25, """
                """"merchant_category": "electronics", "country": "NG"}'"""
            )
            threading.Event().wait()
        _say("[5/5] stopping the scorer and what the demo started")
        status = 0 if len(mine.ids) == settings.events else 1
    except KeyboardInterrupt:
        _say("\ninterrupted: stopping what the demo started")
        return 130
    finally:
        try:
            if spark is not None:
                # Stopping interrupts Hadoop/Kafka threads that warn about it; expected here.
                spark.sparkContext.setLogLevel("ERROR")
            if service is not None:
                service.close()
            if runner is not None:
                runner.stop()  # the scorer, then the monitor
            elif monitor is not None:
                monitor.close()
            if spark is not None:
                # Before the broker goes, so Spark's cached Kafka producers do not retry it.
                spark.stop()
        finally:
            if started_stack:
                stack.down()
    # Last, after everything stopped, so the summary is the final line of the run.
    print(summary, flush=True)
    return status
