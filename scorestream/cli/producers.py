"""Subcommands at the edges: `produce` feature events and `consume` scores."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream import options as opt
from scorestream.cli.common import (
    Command,
    kafka_args,
    kafka_settings,
    registry_arg,
    schema_registry_args,
    schema_registry_settings,
)
from scorestream.contract.formats import FORMATS
from scorestream.errors import ConfigError
from scorestream.producers.publisher import ProduceSettings
from scorestream.producers.rows import FILE_FORMATS
from scorestream.progress import Progress

if TYPE_CHECKING:
    from scorestream.schema_registry import SchemaRegistrySettings


def publishing(line: Progress, total: int) -> Callable[[int, float], None]:
    """The publisher's progress callback: a bar on a terminal (redrawn by `line`), the count
    and rate on plain lines in logs."""

    def show(sent: int, elapsed: float) -> None:
        rate = sent / elapsed if elapsed > 0 else 0.0
        share = sent / total if total else 1.0
        filled = round(30 * share)
        bar = f"[{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} " if line.tty else ""
        line.update(f"{bar}published {sent:,}/{total:,} ({rate:,.0f}/s)")

    return show


def produce_settings(args: argparse.Namespace) -> ProduceSettings:
    return ProduceSettings(
        topic=args.topic,
        count=args.count,
        rate=args.rate,
        seed=args.seed,
        fmt=args.format,
        schema=Path(args.schema) if args.schema else None,
        schema_id=args.schema_id,
        registry=_schema_registry(args),
    )


def cmd_produce(args: argparse.Namespace) -> int:
    from scorestream.producers.publisher import publish

    settings = produce_settings(args)
    if args.from_file:
        return _produce_file(args, settings)
    line = Progress()
    delivered = publish(kafka_settings(args), settings, progress=publishing(line, settings.count))
    line.done(f"published {delivered} events to {args.topic}")
    return 0


def _schema_registry(args: argparse.Namespace) -> SchemaRegistrySettings | None:
    registry = schema_registry_settings(args)
    if registry is not None and args.format != "confluent-avro":
        if not (args.schema_registry or args.schema_registry_option):
            return None  # schema.registry.url of a shared client.properties: not for JSON
        msg = (
            f"--schema-registry {registry.shown_url} serves --format confluent-avro, "
            f"not {args.format!r}"
        )
        raise ConfigError(msg)
    if registry is not None and args.schema_id != ProduceSettings.schema_id:
        msg = (
            f"--schema-id {args.schema_id} and --schema-registry: with a registry the id is "
            "the one the schema has under <topic>-value"
        )
        raise ConfigError(msg)
    return registry


def _produce_file(args: argparse.Namespace, settings: ProduceSettings) -> int:
    from scorestream.avro import EVENT_SCHEMA, read_schema
    from scorestream.producers.from_file import FileSource, check_file, publish_file
    from scorestream.producers.rows import file_format, spec_schema

    path = Path(args.from_file)
    event_id, event_time = "event_id", "event_time"
    if args.spec_from_model:
        if args.schema:
            msg = "--schema and --spec-from-model both type the rows; give one"
            raise ConfigError(msg)
        from scorestream.models.registry import Registry

        registry = Registry(Path(args.registry))
        spec = registry.get(registry.resolve(args.spec_from_model)).spec
        schema = spec_schema(spec)
        event_id, event_time = spec.event_id, spec.event_time
    else:
        schema = read_schema(Path(args.schema) if args.schema else EVENT_SCHEMA)
    source = FileSource(
        path=path,
        fmt=file_format(path, args.from_format),
        schema=schema,
        skip_bad=args.on_bad_row == "skip",
        event_id=event_id,
        event_time=event_time,
    )
    found = check_file(source)
    if found.bad and source.skip_bad:
        print(f"skipping {found.describe(path)}", file=sys.stderr)
    line = Progress()
    progress = publishing(line, found.good)
    delivered, _ = publish_file(kafka_settings(args), settings, source, progress, found)
    skipped = f", {found.bad} bad rows skipped" if found.bad else ""
    line.done(f"published {delivered} events from {path} to {args.topic}{skipped}")
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    from scorestream.producers.subscriber import ScoreSummary, iter_scores

    summary = ScoreSummary()
    limit = args.count

    def done(s: ScoreSummary) -> bool:
        return bool(limit) and s.count >= limit

    isolation = "read_committed" if args.read_committed else "read_uncommitted"
    records = iter_scores(
        kafka_settings(args),
        args.topic,
        done,
        args.timeout,
        summary,
        fmt=args.format,
        isolation=isolation,
        registry=schema_registry_settings(args) if args.format == "confluent-avro" else None,
    )
    for record in records:
        if not args.summary:
            print(json.dumps(record), flush=True)
    if args.summary:
        print(
            f"{summary.count} scores, {len(summary.ids)} distinct events, versions "
            f"{dict(sorted(summary.versions.items()))}, latency p50 "
            f"{summary.percentile(50):.0f} ms p99 {summary.percentile(99):.0f} ms"
        )
    return 0


def register(command: Command) -> None:
    """Add `produce` and `consume` to the CLI."""
    p = command(
        "produce", cmd_produce, "publish feature events: synthetic, or the rows of --from FILE"
    )
    kafka_args(p)
    schema_registry_args(p)
    registry_arg(p)
    d = ProduceSettings()  # each default is the settings field's, written once
    opt.add(p, "--topic", env="SCORESTREAM_INPUT_TOPIC", default=d.topic, help="topic")
    opt.add(
        p,
        "--count",
        env="SCORESTREAM_PRODUCE_COUNT",
        default=d.count,
        type=opt.positive_int,
        help="synthetic events to publish (--from publishes every row of the file)",
    )
    opt.add(
        p,
        "--from",
        env="SCORESTREAM_PRODUCE_FROM",
        default="",
        help="publish the rows of this CSV, JSON lines or Parquet file instead of synthetic "
        "events, typed by --schema or --spec-from-model",
        dest="from_file",
    )
    opt.add(
        p,
        "--from-format",
        env="SCORESTREAM_PRODUCE_FROM_FORMAT",
        default="",
        choices=("", *FILE_FORMATS),
        help="format of --from: csv, jsonl or parquet (empty: by the file's extension)",
    )
    opt.add(
        p,
        "--spec-from-model",
        env="SCORESTREAM_PRODUCE_SPEC_MODEL",
        default="",
        help="type --from rows by this model version's feature spec (champion, vN...; in "
        "--registry) instead of an Avro schema",
    )
    opt.add(
        p,
        "--on-bad-row",
        env="SCORESTREAM_PRODUCE_ON_BAD_ROW",
        default="fail",
        choices=("fail", "skip"),
        help="a --from row that does not fit its type: fail (list the bad rows, publish "
        "nothing, exit 2) or skip (report them, publish the rest)",
    )
    opt.add(
        p,
        "--rate",
        env="SCORESTREAM_PRODUCE_RATE",
        default=d.rate,
        type=opt.non_negative_float,
        help="events per second (0: as fast as possible)",
    )
    opt.add(p, "--seed", env="SCORESTREAM_SEED", default=d.seed, type=int, help="random seed")
    opt.add(
        p,
        "--format",
        env="SCORESTREAM_FORMAT",
        default=d.fmt,
        choices=FORMATS,
        help="event encoding: json, avro or confluent-avro",
    )
    opt.add(
        p,
        "--schema",
        env="SCORESTREAM_EVENT_SCHEMA",
        default="",
        help="Avro writer schema file, which also types --from rows (empty: schemas/event.avsc)",
    )
    opt.add(
        p,
        "--schema-id",
        env="SCORESTREAM_SCHEMA_ID",
        default=d.schema_id,
        type=int,
        help="schema id written in the Confluent header (confluent-avro without a registry)",
    )

    p = command("consume", cmd_consume, "subscribe to the score topic and print records")
    kafka_args(p)
    schema_registry_args(p)
    opt.add(p, "--topic", env="SCORESTREAM_OUTPUT_TOPIC", default="scores", help="topic")
    opt.add(
        p,
        "--count",
        env="SCORESTREAM_CONSUME_COUNT",
        default=0,
        type=int,
        help="stop after this many records (0: until the timeout)",
    )
    opt.add(
        p,
        "--timeout",
        env="SCORESTREAM_CONSUME_TIMEOUT",
        default=30.0,
        type=opt.non_negative_float,
        help="seconds to wait",
    )
    opt.add(
        p,
        "--format",
        env="SCORESTREAM_OUTPUT_FORMAT",
        default="json",
        choices=FORMATS,
        help="score encoding: json, avro or confluent-avro (as the scorer's --output-format)",
    )
    p.add_argument(
        "--read-committed",
        action="store_true",
        help="read only committed transactions (for a scorer in --exactly-once mode) "
        "[env: none, default: false]",
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="print one summary line instead of records [env: none, default: false]",
    )
