"""Subcommand `sink`: upsert the score topic into a database table until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from scorestream import options as opt
from scorestream.cli.common import Command, kafka_args, kafka_settings
from scorestream.contract.formats import FORMATS
from scorestream.errors import ConfigError
from scorestream.sink.run import Sink, SinkSettings
from scorestream.sink.target import SPELLINGS, parse_url


def sink_args(p: argparse.ArgumentParser) -> None:
    # Each default is the settings field's, written once (SinkSettings needs a target).
    d = SinkSettings
    opt.add(
        p,
        "--url",
        env="SCORESTREAM_SINK_URL",
        default=None,
        help=f"database to write to ({SPELLINGS}); may hold a password, never printed",
    )
    opt.add(p, "--table", env="SCORESTREAM_SINK_TABLE", default=d.table, help="table name")
    opt.add(
        p,
        "--topic",
        env="SCORESTREAM_OUTPUT_TOPIC",
        default=d.topic,
        help="score topic to read (the scorer's --output-topic)",
    )
    opt.add(
        p,
        "--group",
        env="SCORESTREAM_SINK_GROUP",
        default=d.group,
        help="consumer group whose offsets track progress (empty: scorestream-sink-<table>)",
    )
    opt.add(
        p,
        "--dlq-topic",
        env="SCORESTREAM_SINK_DLQ_TOPIC",
        default=d.dead_letter_topic,
        help="where unusable score records go (empty: <topic>.sink.dlq)",
    )
    p.add_argument(
        "--score-format",
        choices=FORMATS,
        default=d.score_format,
        help="encoding of score records, the scorer's --output-format "
        f"[env: none, default: {d.score_format}]",
    )
    opt.add(
        p,
        "--batch-size",
        env="SCORESTREAM_SINK_BATCH_SIZE",
        default=d.batch_size,
        type=opt.positive_int,
        help="score records per database transaction (at most)",
    )


def sink_settings(args: argparse.Namespace) -> SinkSettings:
    if not args.url:
        msg = f"sink needs --url or SCORESTREAM_SINK_URL ({SPELLINGS})"
        raise ConfigError(msg)
    return SinkSettings(
        target=parse_url(args.url),
        table=args.table,
        topic=args.topic,
        group=args.group,
        dead_letter_topic=args.dlq_topic,
        score_format=args.score_format,
        batch_size=args.batch_size,
    )


def cmd_sink(args: argparse.Namespace) -> int:
    settings = sink_settings(args)
    sink = Sink(kafka_settings(args), settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(f"\n{signal.Signals(signum).name}: stopping after the current batch", file=sys.stderr)
        sink.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        f"sinking {settings.topic} into table {settings.table!r} of the "
        f"{settings.target.describe()} (group {settings.group_id})",
        file=sys.stderr,
        flush=True,
    )
    sink.run()
    t = sink.totals
    print(
        f"stopped: {t.records} records in {t.batches} batches, {t.rows} rows upserted, "
        f"{t.dead_lettered} dead-lettered",
        file=sys.stderr,
    )
    return 0


def register(command: Command) -> None:
    """Add `sink` to the CLI."""
    p = command("sink", cmd_sink, "upsert the score topic into a database table by event id")
    kafka_args(p)
    sink_args(p)
