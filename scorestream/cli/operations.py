"""Flags and wiring of the scorer's operating modes: trigger, shadow scoring, label feedback.

`scorestream score` adds these flags with `operations_args` and builds the extra batch
listeners with `operation_listeners`; `--trigger realtime` runs `run_realtime` instead of the
micro-batch scorer.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scorestream import options as opt
from scorestream.errors import ConfigError
from scorestream.kafka import KafkaSettings, topic_partitions
from scorestream.models.source import open_source
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.streaming.feedback import METRICS, FeedbackLoop, FeedbackSettings
from scorestream.streaming.realtime import (
    TRIGGER_NAMES,
    RealtimeScorer,
    RealtimeSettings,
    check_settings,
    monitor_settings,
    monitor_slots,
)
from scorestream.streaming.shadow import ShadowScorer, ShadowSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from scorestream.monitoring.settings import MonitorSettings
    from scorestream.streaming.job import Scorer
    from scorestream.streaming.listeners import BatchListener
    from scorestream.streaming.settings import ScorerSettings


def operations_args(p: argparse.ArgumentParser) -> None:
    # Each default is the settings field's, written once (FeedbackSettings needs a topic).
    fb = FeedbackSettings
    opt.add(
        p,
        "--trigger",
        env="SCORESTREAM_TRIGGER",
        default="microbatch",
        choices=TRIGGER_NAMES,
        help="microbatch (hot swap, shadow, feedback, exactly-once, per-batch metrics) or "
        "realtime (Spark real-time mode: lowest latency, model fixed until restart)",
    )
    opt.add(
        p,
        "--realtime-checkpoint-interval",
        env="SCORESTREAM_REALTIME_CHECKPOINT_INTERVAL",
        default=RealtimeSettings().checkpoint_interval,
        help="real-time mode: how often progress is checkpointed (at least 5 seconds)",
    )
    opt.add(
        p,
        "--realtime-monitor-interval",
        env="SCORESTREAM_REALTIME_MONITOR_INTERVAL",
        default="10 seconds",
        help="real-time mode: trigger of the micro-batch query that feeds the metrics and "
        "drift gauges (empty: no metrics, and no extra task slot)",
    )
    opt.add(
        p,
        "--shadow",
        env="SCORESTREAM_SHADOW",
        default=True,
        type=opt.bool_flag,
        help="score every batch with the registry's challenger too, when one is set",
    )
    opt.add(
        p,
        "--shadow-topic",
        env="SCORESTREAM_SHADOW_TOPIC",
        default="",
        help="topic of challenger vs champion scores (empty: <output topic>.shadow)",
    )
    opt.add(
        p,
        "--labels-topic",
        env="SCORESTREAM_LABELS_TOPIC",
        default="",
        help="topic of late labels {event_id, label, label_time} (empty: no feedback)",
    )
    opt.add(
        p,
        "--feedback-window",
        env="SCORESTREAM_FEEDBACK_WINDOW",
        default=fb.window,
        type=opt.positive_int,
        help="labelled events the rolling ROC AUC and log loss are computed over",
    )
    opt.add(
        p,
        "--min-labels",
        env="SCORESTREAM_MIN_LABELS",
        default=fb.min_labels,
        type=opt.positive_int,
        help="labelled events needed before the challenger may be promoted",
    )
    opt.add(
        p,
        "--promote-margin",
        env="SCORESTREAM_PROMOTE_MARGIN",
        default=fb.margin,
        type=opt.non_negative_float,
        help="how much better the challenger must be (ROC AUC points, or log loss)",
    )
    opt.add(
        p,
        "--promote-metric",
        env="SCORESTREAM_PROMOTE_METRIC",
        default=fb.metric,
        choices=METRICS,
        help="the metric that decides a promotion",
    )
    opt.add(
        p,
        "--auto-promote",
        env="SCORESTREAM_AUTO_PROMOTE",
        default=fb.auto_promote,
        type=opt.bool_flag,
        nargs="?",
        const=True,
        help="promote the challenger to champion when it beats the champion on the labels",
    )


def shadow_topic(args: argparse.Namespace, settings: ScorerSettings) -> str:
    topic = str(args.shadow_topic or f"{settings.output_topic}.shadow")
    if topic in (settings.input_topic, settings.output_topic, settings.topics.dead_letter):
        msg = f"shadow topic {topic!r} must differ from the input, output and dead-letter topics"
        raise ConfigError(msg)
    return topic


def realtime_settings(args: argparse.Namespace) -> RealtimeSettings:
    return RealtimeSettings(checkpoint_interval=args.realtime_checkpoint_interval)


def check_args(args: argparse.Namespace, settings: ScorerSettings) -> None:
    """Refuse flag combinations before Spark starts."""
    feedback_settings(args)
    shadow_topic(args, settings)
    if args.trigger == "realtime":
        if args.labels_topic or args.auto_promote:
            msg = "--labels-topic and --auto-promote need micro-batch mode (--trigger microbatch)"
            raise ConfigError(msg)
        check_settings(settings, realtime_settings(args))


def feedback_settings(args: argparse.Namespace) -> FeedbackSettings | None:
    if not args.labels_topic:
        if args.auto_promote:
            msg = "--auto-promote needs --labels-topic (promotions are decided on labels)"
            raise ConfigError(msg)
        return None
    if args.auto_promote and not args.shadow:
        msg = (
            "--auto-promote needs --shadow true: a promotion compares the challenger's shadow "
            "scores with the champion's"
        )
        raise ConfigError(msg)
    return FeedbackSettings(
        labels_topic=args.labels_topic,
        window=args.feedback_window,
        min_labels=args.min_labels,
        margin=args.promote_margin,
        metric=args.promote_metric,
        auto_promote=args.auto_promote,
    )


def operation_listeners(
    args: argparse.Namespace,
    kafka: KafkaSettings,
    settings: ScorerSettings,
    metrics: ScorerMetrics | None,
) -> tuple[list[BatchListener], list[ShadowScorer], list[FeedbackLoop]]:
    """The shadow scorer (`--shadow`) and the feedback loop (`--labels-topic`), each its own
    listener, the loop after the shadow so it reads the batch's challenger scores; attach()."""
    feedback = feedback_settings(args)
    if args.trigger != "microbatch":
        return [], [], []
    registry, _ = open_source(settings.registry, settings.model, settings.mlflow_uri)
    shadows = []
    if args.shadow:
        topic = shadow_topic(args, settings)
        shadows.append(
            ShadowScorer(
                kafka,
                registry,
                ShadowSettings(topic=topic, topic_partitions=settings.topic_partitions),
                metrics,
                keep_pairs=feedback is not None,
            )
        )
    loops = []
    if feedback is not None:
        loops.append(FeedbackLoop(feedback, registry, kafka, shadows[0] if shadows else None))
    return [*shadows, *loops], shadows, loops


def attach(scorer: Scorer, listeners: Sequence[ShadowScorer | FeedbackLoop]) -> None:
    """Point each operation listener at the scorer's serving model (the event fields)."""
    for listener in listeners:
        listener.attach(scorer)


def realtime_master(args: argparse.Namespace, kafka: KafkaSettings, partitions: int) -> str | None:
    """The Spark master of a real-time run: local[*] grows to the slots it needs (one per
    input partition, one for the metrics query), since its tasks mostly wait on Kafka.
    None leaves the choice to the session builder (spark-submit's master, else local[*])."""
    import os

    from scorestream.spark import DEFAULT_MASTER, parse_conf, preset_master

    if args.trigger != "realtime" or (args.master or DEFAULT_MASTER) != "local[*]":
        return args.master
    if args.master is None and preset_master(parse_conf(args.spark_conf)) is not None:
        return None  # spark-submit, spark.master or MASTER decides
    existing = topic_partitions(kafka, args.input_topic) or partitions
    needed = monitor_slots(existing) if args.realtime_monitor_interval else existing
    return f"local[{max(os.cpu_count() or 1, needed)}]"


def run_realtime(
    args: argparse.Namespace,
    spark: SparkSession,
    kafka: KafkaSettings,
    settings: ScorerSettings,
    monitoring: MonitorSettings,
) -> int:
    """`scorestream score --trigger realtime`: run until SIGTERM or Ctrl-C.

    With a monitor interval, a micro-batch query beside the real-time one feeds the same
    metrics and drift gauges as the micro-batch scorer (streaming.realtime.monitor_settings).
    """
    from scorestream.streaming.job import Scorer
    from scorestream.streaming.monitor import ScorerMonitor
    from scorestream.streaming.runner import QueryRunner, RealTime

    check_args(args, settings)
    scorer = RealtimeScorer(spark, kafka, settings, realtime_settings(args))
    monitor: ScorerMonitor | None = None
    watcher: Scorer | None = None
    if args.realtime_monitor_interval:
        monitor = ScorerMonitor(spark, monitoring)
        watcher = Scorer(
            spark, kafka, monitor_settings(settings, args.realtime_monitor_interval), [monitor]
        )
        monitor.attach(watcher, progress_of=lambda: scorer.query)
    strategy = RealTime(scorer, kafka, watcher, metrics_url=monitor.url if monitor else "")
    return QueryRunner(strategy, closers=[monitor.close] if monitor else []).run()
