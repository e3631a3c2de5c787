"""Subcommand `score`: run the streaming scorer until SIGTERM or Ctrl-C.

One module (about 330 lines) because it is the one `score` command: its flags, the
ScorerSettings they build (checked before Spark starts) and the run; the operating-mode flags
live in cli/operations.py.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from scorestream import options as opt
from scorestream.cli import operations as ops
from scorestream.cli.common import (
    Command,
    kafka_args,
    kafka_settings,
    mlflow_arg,
    registry_arg,
    schema_registry_args,
    schema_registry_settings,
    spark_args,
    spark_session,
)
from scorestream.cli.monitoring import metrics_args, monitor_settings
from scorestream.contract.formats import FORMATS
from scorestream.errors import ConfigError
from scorestream.fs import location
from scorestream.models.parity import COMPILE_MODES
from scorestream.schema_registry import SchemaRegistrySettings
from scorestream.streaming import preflight
from scorestream.streaming.avro_input import InputFormat
from scorestream.streaming.exactly_once import EXACTLY_ONCE_MAX_OFFSETS
from scorestream.streaming.exactly_once_tasks import TaskCrash
from scorestream.streaming.job import Scorer
from scorestream.streaming.monitor import ScorerMonitor
from scorestream.streaming.runner import MicroBatch, QueryRunner
from scorestream.streaming.scoring import OutputFormat
from scorestream.streaming.settings import ScorerSettings, validate_settings
from scorestream.streaming.validate import ValidationSettings


def scorer_args(p: argparse.ArgumentParser) -> None:
    d = ScorerSettings()  # each default is the settings field's, written once
    opt.add(
        p,
        "--input-topic",
        env="SCORESTREAM_INPUT_TOPIC",
        default=d.input_topic,
        help="topic of feature events",
    )
    opt.add(
        p,
        "--output-topic",
        env="SCORESTREAM_OUTPUT_TOPIC",
        default=d.output_topic,
        help="topic the scores are published to",
    )
    opt.add(
        p,
        "--dlq-topic",
        env="SCORESTREAM_DLQ_TOPIC",
        default=d.dead_letter_topic,
        help="dead-letter topic (empty: <input topic>.dlq)",
    )
    opt.add(
        p,
        "--model",
        env="SCORESTREAM_MODEL",
        default=d.model,
        help="model to serve: champion, challenger, latest or vN of the registry, or "
        "models:/NAME@ALIAS or models:/NAME/VERSION of an MLflow registry (--mlflow-uri)",
    )
    opt.add(
        p,
        "--checkpoint",
        env="SCORESTREAM_CHECKPOINT",
        default="",
        help="checkpoint directory or Hadoop URI such as hdfs://nn:8020/ckpt "
        "(empty: .scorestream/checkpoints/<in>--<out>)",
    )
    opt.add(
        p,
        "--trigger-interval",
        env="SCORESTREAM_TRIGGER_INTERVAL",
        default=d.trigger_interval,
        help="micro-batch interval such as '1 second' (empty: back to back)",
    )
    opt.add(
        p,
        "--max-offsets-per-trigger",
        env="SCORESTREAM_MAX_OFFSETS_PER_TRIGGER",
        default=d.max_offsets_per_trigger,
        type=opt.positive_int,
        help="cap on records per micro-batch (with --exactly-once, unset means "
        f"{EXACTLY_ONCE_MAX_OFFSETS:,}: one transaction per bounded batch)",
    )
    opt.add(
        p,
        "--min-partitions",
        env="SCORESTREAM_MIN_PARTITIONS",
        default=d.min_partitions,
        type=opt.positive_int,
        help="minimum Spark partitions read from Kafka",
    )
    opt.add(
        p,
        "--starting-offsets",
        env="SCORESTREAM_STARTING_OFFSETS",
        default=d.starting_offsets,
        help="earliest, latest or Spark's JSON offsets, for a query without a checkpoint",
    )
    opt.add(
        p,
        "--max-record-bytes",
        env="SCORESTREAM_MAX_RECORD_BYTES",
        default=d.validation.max_record_bytes,
        type=opt.positive_int,
        help="records larger than this are dead-lettered",
    )
    opt.add(
        p,
        "--input-format",
        env="SCORESTREAM_INPUT_FORMAT",
        default=d.input_format.kind,
        choices=FORMATS,
        help="encoding of the input events: json, avro (plain body) or confluent-avro "
        "(magic byte 0 + 4-byte schema id + body)",
    )
    opt.add(
        p,
        "--reader-schema",
        env="SCORESTREAM_READER_SCHEMA",
        default=str(d.input_format.reader_schema),
        help="Avro schema the events are decoded into (the contract)",
    )
    opt.add(
        p,
        "--writer-schema",
        env="SCORESTREAM_WRITER_SCHEMA",
        default="",
        help="Avro schema the producers write with, if not the reader schema (plain Avro, and "
        "confluent-avro without --schema-dir)",
    )
    opt.add(
        p,
        "--schema-dir",
        env="SCORESTREAM_SCHEMA_DIR",
        default="",
        help="confluent-avro: directory of writer schemas named <schema id>.avsc, re-read "
        "every batch",
    )
    opt.add(
        p,
        "--output-format",
        env="SCORESTREAM_OUTPUT_FORMAT",
        default=d.output_format.kind,
        choices=FORMATS,
        help="encoding of score records: json, avro or confluent-avro (schemas/score.avsc)",
    )
    opt.add(
        p,
        "--output-schema-id",
        env="SCORESTREAM_OUTPUT_SCHEMA_ID",
        default=d.output_format.schema_id,
        type=int,
        help="schema id written in the header of confluent-avro score records",
    )
    opt.add(
        p,
        "--exactly-once",
        env="SCORESTREAM_EXACTLY_ONCE",
        default=d.exactly_once,
        type=opt.bool_flag,
        nargs="?",
        const=True,
        help="publish each micro-batch in one Kafka transaction with a batch marker "
        "(read scores with isolation.level=read_committed)",
    )
    opt.add(
        p,
        "--compiled",
        env="SCORESTREAM_COMPILED",
        default=d.compiled,
        choices=COMPILE_MODES,
        help="score with the model compiled to column expressions: auto (when it matches the "
        "PipelineModel to 1e-12 at load), on (or fail), off (PipelineModel)",
    )
    opt.add(
        p,
        "--marker-topic",
        env="SCORESTREAM_MARKER_TOPIC",
        default=d.marker_topic,
        help="exactly-once batch markers (empty: <output topic>.markers)",
    )
    opt.add(
        p,
        "--create-topics",
        env="SCORESTREAM_CREATE_TOPICS",
        default=d.create_topics,
        type=opt.bool_flag,
        help="create missing input, output and dead-letter topics (false: fail when missing)",
    )
    opt.add(
        p,
        "--startup-timeout",
        env="SCORESTREAM_STARTUP_TIMEOUT",
        default=d.startup_timeout_s,
        type=opt.non_negative_float,
        help="seconds to retry an unreachable broker before giving up",
    )
    opt.add(
        p,
        "--topic-partitions",
        env="SCORESTREAM_TOPIC_PARTITIONS",
        default=d.topic_partitions,
        type=opt.positive_int,
        help="partitions of topics the scorer creates",
    )


def _schema_registry(args: argparse.Namespace) -> SchemaRegistrySettings | None:
    """The registry of --schema-registry, checked against the formats it can serve."""
    registry = schema_registry_settings(args)
    if registry is None:
        return None
    if "confluent-avro" not in (args.input_format, args.output_format):
        if not (args.schema_registry or args.schema_registry_option):
            return None  # schema.registry.url of a shared client.properties: not for JSON
        msg = (
            f"--schema-registry {registry.shown_url} serves confluent-avro, but the input format "
            f"is {args.input_format!r} and the output format {args.output_format!r}"
        )
        raise ConfigError(msg)
    if args.output_format == "confluent-avro" and args.output_schema_id != 1:
        msg = (
            f"--output-schema-id {args.output_schema_id} and --schema-registry: with a registry "
            "the score schema's id is the one it registers under <output topic>-value"
        )
        raise ConfigError(msg)
    return registry


def _crash_hook() -> int | None:
    """SCORESTREAM_TEST_CRASH_AFTER_COMMIT=<batch id>: a test-only hook (no flag) that makes an
    exactly-once scorer exit hard right after that batch's transaction commits."""
    raw = os.environ.get("SCORESTREAM_TEST_CRASH_AFTER_COMMIT", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        msg = f"SCORESTREAM_TEST_CRASH_AFTER_COMMIT={raw!r} is not valid; expected a batch id"
        raise ConfigError(msg)
    return int(raw)


def _task_crash_hook() -> TaskCrash | None:
    """SCORESTREAM_TEST_CRASH_IN_TASK=<batch id>:<partition>:<records>: a test-only hook (no
    flag) that makes an exactly-once task exit mid-transaction on its first attempt."""
    raw = os.environ.get("SCORESTREAM_TEST_CRASH_IN_TASK", "").strip()
    return TaskCrash.parse(raw) if raw else None


def scorer_settings(args: argparse.Namespace) -> ScorerSettings:
    registry = _schema_registry(args)
    settings = ScorerSettings(
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        dead_letter_topic=args.dlq_topic,
        registry=location(args.registry),
        model=args.model,
        mlflow_uri=args.mlflow_uri,
        checkpoint=location(args.checkpoint) if args.checkpoint else None,
        trigger_interval=args.trigger_interval,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        min_partitions=args.min_partitions,
        starting_offsets=args.starting_offsets,
        topic_partitions=args.topic_partitions,
        validation=ValidationSettings(max_record_bytes=args.max_record_bytes),
        input_format=InputFormat(
            kind=args.input_format,
            reader_schema=Path(args.reader_schema),
            writer_schema=Path(args.writer_schema) if args.writer_schema else None,
            schema_dir=Path(args.schema_dir) if args.schema_dir else None,
            registry=registry if args.input_format == "confluent-avro" else None,
        ),
        output_format=OutputFormat(
            kind=args.output_format,
            schema_id=args.output_schema_id,
            registry=registry if args.output_format == "confluent-avro" else None,
        ),
        exactly_once=args.exactly_once,
        marker_topic=args.marker_topic,
        compiled=args.compiled,
        create_topics=args.create_topics,
        startup_timeout_s=args.startup_timeout,
        crash_after_commit=_crash_hook(),
        crash_in_task=_task_crash_hook(),
    )
    validate_settings(settings)
    return settings


def cmd_score(args: argparse.Namespace) -> int:
    settings = scorer_settings(args)
    monitoring = monitor_settings(args)
    kafka = kafka_settings(args)
    ops.check_args(args, settings)  # flag errors before Spark starts
    # A broker that does not answer or refuses the credentials fails in a second, not after
    # the JVM's start-up; the scorer's own preflight checks again once Spark runs.
    preflight.check_broker(kafka, settings.startup_timeout_s)
    master = ops.realtime_master(args, kafka, settings.topic_partitions)
    spark = spark_session(args, "scorestream-scorer", master=master)
    if args.trigger == "realtime":
        return ops.run_realtime(args, spark, kafka, settings, monitoring)
    monitor = ScorerMonitor(spark, monitoring)
    extra, shadows, loops = ops.operation_listeners(args, kafka, settings, monitor.metrics)
    scorer = Scorer(spark, kafka, settings, listeners=[monitor, *extra])
    monitor.attach(scorer)
    ops.attach(scorer, [*shadows, *loops])
    runner = QueryRunner(
        MicroBatch(scorer, metrics_url=monitor.url),
        closers=[monitor.close, *(loop.close for loop in loops)],
    )
    return runner.run()


def register(command: Command) -> None:
    """Add `score` to the CLI."""
    p = command("score", cmd_score, "run the streaming scorer until SIGTERM or Ctrl-C")
    kafka_args(p)
    spark_args(p)
    registry_arg(p)
    mlflow_arg(p)
    scorer_args(p)
    schema_registry_args(p)
    ops.operations_args(p)
    metrics_args(p)
