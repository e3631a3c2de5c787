"""Subcommands at the edges: `produce` feature events and `consume` scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scorestream import options as opt
from scorestream.cli.common import Command, kafka_args, kafka_settings
from scorestream.contract.formats import FORMATS
from scorestream.progress import Progress


def cmd_produce(args: argparse.Namespace) -> int:
    from scorestream.producers.publisher import ProduceSettings, publish

    settings = ProduceSettings(
        topic=args.topic,
        count=args.count,
        rate=args.rate,
        seed=args.seed,
        fmt=args.format,
        schema=Path(args.schema) if args.schema else None,
        schema_id=args.schema_id,
    )

    line = Progress()

    def progress(sent: int, elapsed: float) -> None:
        rate = sent / elapsed if elapsed > 0 else 0.0
        line.update(f"published {sent}/{settings.count} ({rate:,.0f}/s)")

    delivered = publish(kafka_settings(args), settings, progress=progress)
    line.done(f"published {delivered} events to {args.topic}")
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
    p = command("produce", cmd_produce, "publish synthetic feature events")
    kafka_args(p)
    opt.add(p, "--topic", env="SCORESTREAM_INPUT_TOPIC", default="features", help="topic")
    opt.add(
        p,
        "--count",
        env="SCORESTREAM_PRODUCE_COUNT",
        default=10_000,
        type=opt.positive_int,
        help="events to publish",
    )
    opt.add(
        p,
        "--rate",
        env="SCORESTREAM_PRODUCE_RATE",
        default=0.0,
        type=opt.non_negative_float,
        help="events per second (0: as fast as possible)",
    )
    opt.add(p, "--seed", env="SCORESTREAM_SEED", default=7, type=int, help="random seed")
    opt.add(
        p,
        "--format",
        env="SCORESTREAM_FORMAT",
        default="json",
        choices=FORMATS,
        help="event encoding: json, avro or confluent-avro",
    )
    opt.add(
        p,
        "--schema",
        env="SCORESTREAM_EVENT_SCHEMA",
        default="",
        help="Avro writer schema file (empty: schemas/event.avsc)",
    )
    opt.add(
        p,
        "--schema-id",
        env="SCORESTREAM_SCHEMA_ID",
        default=1,
        type=int,
        help="schema id written in the Confluent header (confluent-avro)",
    )

    p = command("consume", cmd_consume, "subscribe to the score topic and print records")
    kafka_args(p)
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
