"""Listeners and accounting never fail a batch, on the real broker; `--shadow false` holds with
`--labels-topic`; the real-time scorer installs the Avro decoder guard.

One stream of 1,500 events in batches of 300 with, next to the monitor: a listener that raises,
a listener whose tally column fails inside Spark (so the one tally job of the batch fails), a
shadow scorer whose topic cannot be created, and the feedback loop as `score --shadow false
--labels-topic ...` builds it. Every event must be scored once and counted by reason, each
failure logged and counted per listener, and the feedback loop must still join the labels to
the champion's scores, with no shadow topic written.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from streamkit import EVENT_TIME, clone_version, read_quiet, wait_for

from scorestream.cli import build_parser
from scorestream.cli import operations as ops
from scorestream.cli.streaming import scorer_settings
from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings, topic_partitions
from scorestream.models.registry import Registry
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.monitoring.settings import MonitorSettings
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.streaming.avro_input import InputFormat
from scorestream.streaming.job import Scorer
from scorestream.streaming.listeners import BatchStats
from scorestream.streaming.monitor import ScorerMonitor
from scorestream.streaming.realtime import RealtimeScorer
from scorestream.streaming.settings import ScorerSettings
from scorestream.streaming.shadow import ShadowScorer, ShadowSettings
from scorestream.streaming.validate import ValidationSettings
from scorestream.tally import Tally

N = 1_500


class Raising:
    name = "raising"

    def on_batch(self, _scored: Any, _stats: BatchStats) -> None:
        raise RuntimeError("a listener bug")


class FailingTally:
    """Its tally column raises inside Spark: the batch's single tally job fails."""

    name = "failing-tally"

    def __init__(self) -> None:
        self.batches = 0

    def batch_tallies(self, _version: int) -> tuple[list[Any], Mapping[str, Tally]]:
        from pyspark.sql import functions as F

        boom = F.raise_error(F.lit("a tally bug")).cast("int")
        return [boom.alias("__boom")], {"__boom": Tally(F.col("__boom"))}

    def on_batch(self, _scored: Any, _stats: BatchStats) -> None:
        self.batches += 1


def _topic_exists(kafka: KafkaSettings, topic: str) -> bool:
    try:
        return topic_partitions(kafka, topic) > 0
    except Exception:
        return False


def test_failing_listeners_and_tallies_never_fail_a_batch(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    registry = Registry(shutil.copytree(trained_registry.root, tmp_path / "registry"))
    v1 = registry.resolve("champion")
    registry.promote(clone_version(registry, v1), "challenger", reason="test: a challenger")
    source, output = topic_factory("lf-in"), topic_factory("lf-out")
    labels = topic_factory("lf-labels", partitions=1)
    events = [
        e | {"event_id": f"lf-{i}", "event_time": EVENT_TIME + i}
        for i, e in enumerate(iter_events(N, seed=77))
    ]
    assert publish(kafka, ProduceSettings(topic=source), events) == N
    label_rows = [{"event_id": e["event_id"], "label": i % 2} for i, e in enumerate(events)]
    assert publish(kafka, ProduceSettings(topic=labels), label_rows) == N

    args = build_parser().parse_args(
        ["score", "--registry", str(registry.root), "--input-topic", source,
         "--output-topic", output, "--shadow", "false", "--labels-topic", labels,
         "--min-labels", "10", "--feedback-window", "5000"]
    )  # fmt: skip
    settings = replace(
        scorer_settings(args), checkpoint=tmp_path / "checkpoint", max_offsets_per_trigger=300
    )
    metrics = ScorerMetrics(CollectorRegistry())
    monitor = ScorerMonitor(spark, MonitorSettings(metrics_port=0, drift=True), metrics=metrics)
    extra, shadows, loops = ops.operation_listeners(args, kafka, settings, metrics)
    assert shadows == [] and len(loops) == 1  # --shadow false: the feedback loop alone
    # A shadow scorer of its own whose topic name Kafka refuses: shadow scoring fails per batch.
    broken_shadow = ShadowScorer(kafka, registry, ShadowSettings(topic="bad topic!"), metrics)
    tally = FailingTally()
    scorer = Scorer(
        spark,
        kafka,
        settings,
        listeners=[monitor, Raising(), tally, broken_shadow, *extra],
    )
    monitor.attach(scorer)
    broken_shadow.attach(scorer)
    ops.attach(scorer, loops)
    scorer.start()
    try:
        scorer.wait_ready()
        wait_for(scorer, N, timeout_s=400)
        scorer.settle()
        assert scorer.query is not None and scorer.query.isActive  # the query goes on
    finally:
        scorer.stop()
        loops[0].close()
        monitor.close()

    totals = scorer.totals
    assert totals.records_in == totals.scored == N and totals.batches >= 5
    scores = read_quiet(kafka, output, N, quiet_s=2.0, timeout_s=120)
    ids = Counter(json.loads(m.value())["event_id"] for m in scores)
    assert len(scores) == N and len(ids) == N
    # The counters still moved for every batch (counted by reason alone when tallies failed).
    assert metrics.records_in._value.get() == N

    def failed(name: str) -> float:
        return metrics.listener_failures.labels(listener=name)._value.get()

    batches = totals.batches
    assert failed("raising") == batches
    assert failed("tallies") == batches
    assert failed("shadow") == batches
    assert tally.batches == batches  # it still heard every batch
    assert scorer.listener_failures == 3 * batches

    # Feedback without shadow scoring: labels joined to the champion's scores.
    figures = loops[0].last
    assert figures is not None and figures.champion_version == v1
    assert figures.challenger_version is None and figures.labelled == N
    assert not _topic_exists(kafka, f"{output}.shadow")


def test_realtime_scorer_installs_the_avro_decoder_guard(
    spark: Any, kafka: KafkaSettings, trained_registry: Registry, topic_factory: Any, tmp_path: Path
) -> None:
    limit = 777_001 + int(time.time()) % 1000  # a value no other test sets
    settings = ScorerSettings(
        input_topic=topic_factory("rt-guard-in"),
        output_topic=topic_factory("rt-guard-out"),
        registry=trained_registry.root,
        checkpoint=tmp_path / "checkpoint",
        input_format=InputFormat(kind="avro"),
        validation=ValidationSettings(max_record_bytes=limit),
    )
    RealtimeScorer(spark, kafka, settings).preflight()
    jvm = spark.sparkContext._jvm
    for kind in ("string", "bytes", "collectionItems"):
        prop = jvm.java.lang.System.getProperty(f"org.apache.avro.limits.{kind}.maxLength")
        assert prop == str(limit), kind
