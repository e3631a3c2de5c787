"""Subcommand `score`: run the streaming scorer until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from monitoring.cli import metrics_args, monitor_settings
from scorestream import options as opt
from scorestream.cli_common import (
    Command,
    kafka_args,
    kafka_settings,
    registry_arg,
    spark_args,
    spark_session,
)
from streaming.job import Scorer, ScorerSettings, validate_settings
from streaming.monitor import ScorerMonitor
from streaming.validate import ValidationSettings


def scorer_args(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--input-topic",
        env="SCORESTREAM_INPUT_TOPIC",
        default="features",
        help="topic of feature events",
    )
    opt.add(
        p,
        "--output-topic",
        env="SCORESTREAM_OUTPUT_TOPIC",
        default="scores",
        help="topic the scores are published to",
    )
    opt.add(
        p,
        "--dlq-topic",
        env="SCORESTREAM_DLQ_TOPIC",
        default="",
        help="dead-letter topic (empty: <input topic>.dlq)",
    )
    opt.add(
        p,
        "--model",
        env="SCORESTREAM_MODEL",
        default="champion",
        help="model to serve: champion, challenger, latest or vN",
    )
    opt.add(
        p,
        "--checkpoint",
        env="SCORESTREAM_CHECKPOINT",
        default="",
        help="checkpoint directory (empty: .scorestream/checkpoints/<in>--<out>)",
    )
    opt.add(
        p,
        "--trigger-interval",
        env="SCORESTREAM_TRIGGER_INTERVAL",
        default="",
        help="micro-batch interval such as '1 second' (empty: back to back)",
    )
    opt.add(
        p,
        "--max-offsets-per-trigger",
        env="SCORESTREAM_MAX_OFFSETS_PER_TRIGGER",
        default=None,
        type=opt.positive_int,
        help="cap on records per micro-batch",
    )
    opt.add(
        p,
        "--min-partitions",
        env="SCORESTREAM_MIN_PARTITIONS",
        default=None,
        type=opt.positive_int,
        help="minimum Spark partitions read from Kafka",
    )
    opt.add(
        p,
        "--starting-offsets",
        env="SCORESTREAM_STARTING_OFFSETS",
        default="earliest",
        help="earliest, latest or Spark's JSON offsets, for a query without a checkpoint",
    )
    opt.add(
        p,
        "--max-record-bytes",
        env="SCORESTREAM_MAX_RECORD_BYTES",
        default=1_048_576,
        type=opt.positive_int,
        help="records larger than this are dead-lettered",
    )
    opt.add(
        p,
        "--topic-partitions",
        env="SCORESTREAM_TOPIC_PARTITIONS",
        default=2,
        type=opt.positive_int,
        help="partitions of topics the scorer creates",
    )


def scorer_settings(args: argparse.Namespace) -> ScorerSettings:
    settings = ScorerSettings(
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        dead_letter_topic=args.dlq_topic,
        registry=Path(args.registry),
        model=args.model,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        trigger_interval=args.trigger_interval,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        min_partitions=args.min_partitions,
        starting_offsets=args.starting_offsets,
        topic_partitions=args.topic_partitions,
        validation=ValidationSettings(max_record_bytes=args.max_record_bytes),
    )
    validate_settings(settings)
    return settings


def cmd_score(args: argparse.Namespace) -> int:
    settings = scorer_settings(args)
    monitoring = monitor_settings(args)
    spark = spark_session(args, "scorestream-scorer")
    monitor = ScorerMonitor(spark, monitoring)
    scorer = Scorer(spark, kafka_settings(args), settings, listeners=[monitor])
    monitor.attach(scorer)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(
            f"\n{signal.Signals(signum).name}: stopping after the current batch",
            file=sys.stderr,
            flush=True,
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    query = scorer.start()
    print(
        f"scoring {settings.input_topic} -> {settings.output_topic} "
        f"(dead letters: {settings.topics.dead_letter}) with model "
        f"v{scorer.holder.version}; checkpoint {settings.checkpoint_dir}; "
        f"metrics on {monitor.url}",
        file=sys.stderr,
        flush=True,
    )
    while not stop.is_set() and query.isActive:
        stop.wait(1.0)
    scorer.stop()
    monitor.close()
    scorer.raise_if_failed()
    t = scorer.totals
    print(
        f"stopped: {t.records_in} records in, {t.scored} scored, "
        f"{t.dead_lettered} dead-lettered in {t.batches} batches",
        file=sys.stderr,
    )
    return 0


def register(command: Command) -> None:
    """Add `score` to the CLI."""
    p = command("score", cmd_score, "run the streaming scorer until SIGTERM or Ctrl-C")
    kafka_args(p)
    spark_args(p)
    registry_arg(p)
    scorer_args(p)
    metrics_args(p)
