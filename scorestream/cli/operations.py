"""Flags and wiring of the scorer's operating modes: trigger, shadow scoring, label feedback.

`scorestream score` adds these flags with `operations_args` and builds the extra batch
listeners with `operation_listeners`; `--trigger realtime` runs `run_realtime` instead of the
micro-batch scorer.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scorestream import options as opt
from scorestream.errors import ConfigError
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.streaming.feedback import METRICS, FeedbackLoop, FeedbackSettings
from scorestream.streaming.realtime import (
    TRIGGER_NAMES,
    RealtimeScorer,
    RealtimeSettings,
    check_settings,
)
from scorestream.streaming.shadow import ShadowScorer, ShadowSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from scorestream.streaming.job import BatchListener, Scorer, ScorerSettings


def operations_args(p: argparse.ArgumentParser) -> None:
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
        default="5 seconds",
        help="real-time mode: how often progress is checkpointed (at least 5 seconds)",
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
        default=5_000,
        type=opt.positive_int,
        help="labelled events the rolling ROC AUC and log loss are computed over",
    )
    opt.add(
        p,
        "--min-labels",
        env="SCORESTREAM_MIN_LABELS",
        default=1_000,
        type=opt.positive_int,
        help="labelled events needed before the challenger may be promoted",
    )
    opt.add(
        p,
        "--promote-margin",
        env="SCORESTREAM_PROMOTE_MARGIN",
        default=0.01,
        type=opt.non_negative_float,
        help="how much better the challenger must be (ROC AUC points, or log loss)",
    )
    opt.add(
        p,
        "--promote-metric",
        env="SCORESTREAM_PROMOTE_METRIC",
        default="roc_auc",
        choices=METRICS,
        help="the metric that decides a promotion",
    )
    opt.add(
        p,
        "--auto-promote",
        env="SCORESTREAM_AUTO_PROMOTE",
        default=False,
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


def check_args(args: argparse.Namespace, settings: ScorerSettings) -> None:
    """Refuse flag combinations before Spark starts."""
    feedback_settings(args)
    shadow_topic(args, settings)
    if args.trigger == "realtime":
        if args.labels_topic or args.auto_promote:
            msg = "--labels-topic and --auto-promote need micro-batch mode (--trigger microbatch)"
            raise ConfigError(msg)
        check_settings(settings, RealtimeSettings(args.realtime_checkpoint_interval))


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
    registry = Registry(settings.registry)
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


def run_realtime(
    args: argparse.Namespace, spark: SparkSession, kafka: KafkaSettings, settings: ScorerSettings
) -> int:
    """`scorestream score --trigger realtime`: run until SIGTERM or Ctrl-C."""
    import signal
    from types import FrameType

    check_args(args, settings)
    scorer = RealtimeScorer(
        spark, kafka, settings, RealtimeSettings(args.realtime_checkpoint_interval)
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(f"\n{signal.Signals(signum).name}: stopping", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    query = scorer.start()
    print(
        f"real-time scoring {settings.input_topic} -> {settings.output_topic} "
        f"(dead letters: {settings.topics.dead_letter}) with model v{scorer.version} (fixed "
        f"until restart); checkpoint {settings.checkpoint_dir} every "
        f"{args.realtime_checkpoint_interval}",
        file=sys.stderr,
        flush=True,
    )
    while not stop.is_set() and query.isActive:
        stop.wait(1.0)
    scorer.stop()
    if not stop.is_set():
        scorer.raise_if_failed()
    print("stopped", file=sys.stderr)
    return 0
