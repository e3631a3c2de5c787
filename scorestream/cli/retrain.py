"""Subcommand `retrain`: a challenger from recent labelled events, on demand, on a schedule or on
a drift alert of the running scorer."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from scorestream import options as opt
from scorestream.cli.common import (
    Command,
    kafka_args,
    kafka_settings,
    registry_arg,
    spark_args,
    spark_session,
)
from scorestream.contract.formats import FORMATS
from scorestream.errors import ConfigError
from scorestream.models.retrain import RetrainSettings
from scorestream.monitoring.drift_trigger import DriftTrigger
from scorestream.streaming.retrain import Schedule
from scorestream.streaming.training_set import DataWindow

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """argparse type: `90`, `30s`, `10m`, `2h`, `1d` -> seconds (> 0)."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        msg = f"expected a duration such as 30s, 10m, 2h or 1d, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _progress(message: str) -> None:
    print(f"[retrain] {message}", file=sys.stderr, flush=True)


def plan(args: argparse.Namespace) -> tuple[RetrainSettings, DataWindow, Schedule]:
    """(RetrainSettings, DataWindow, Schedule) of the flags, checked before Spark starts."""
    from scorestream.streaming.avro_input import InputFormat

    if args.last and args.since_given:
        msg = "give --since or --last, not both"
        raise ConfigError(msg)
    window = DataWindow(
        labels_topic=args.labels_topic,
        input_topic=args.input_topic,
        since_s=None if args.last else args.since,
        last=args.last or None,
        label_delay_s=args.label_delay,
        features_path=args.features or None,
        features_format=args.format,
        input_format=InputFormat(
            kind=args.input_format,
            writer_schema=Path(args.writer_schema) if args.writer_schema else None,
        ),
    )
    drift = (
        DriftTrigger(args.on_drift, psi_threshold=args.psi_threshold, min_window=args.min_window)
        if args.on_drift
        else None
    )
    schedule = Schedule(
        every_s=args.every, drift=drift, poll_s=args.poll_interval, max_runs=args.max_runs or None
    )
    settings = RetrainSettings(registry=Path(args.registry), base=args.base, min_rows=args.min_rows)
    return settings, window, schedule


def cmd_retrain(args: argparse.Namespace) -> int:
    from scorestream.models.source import ModelEntry
    from scorestream.streaming.retrain import retrain_once, run

    settings, window, schedule = plan(args)
    kafka = kafka_settings(args)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(
            f"\n{signal.Signals(signum).name}: stopping after the current run",
            file=sys.stderr,
            flush=True,
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    spark = spark_session(args, "scorestream-retrain")

    def once(trigger: str) -> ModelEntry:
        _progress(f"retraining ({trigger})")
        entry = retrain_once(spark, kafka, settings, window, trigger, _progress)
        lineage = entry.metadata["lineage"]
        print(
            f"v{entry.version} -> {settings.alias}: {lineage['rows']} labelled events, parent "
            f"v{lineage['parent_version']}, held-out log loss "
            f"{entry.metadata['metrics']['log_loss']:.4f} (parent "
            f"{lineage['holdout']['parent']['log_loss']:.4f})",
            flush=True,
        )
        return entry

    made = run(once, schedule, stop)
    if schedule.every_s is not None or schedule.drift is not None:
        print(f"stopped: {len(made)} challenger(s) published", file=sys.stderr)
    return 0


class _Given(argparse.Action):
    """Stores the value and remembers that the flag was on the command line."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.since_given = True


def register(command: Command) -> None:
    """Add `retrain` to the CLI."""
    p = command(
        "retrain",
        cmd_retrain,
        "train a challenger on recent labelled events with the champion's settings",
    )
    p.set_defaults(since_given=False)
    kafka_args(p)
    spark_args(p)
    registry_arg(p)
    # Each default is the settings field's, written once (RetrainSettings needs a registry,
    # DriftTrigger a URL).
    window, schedule, retrain, drift = DataWindow(), Schedule(), RetrainSettings, DriftTrigger
    opt.add(
        p,
        "--labels-topic",
        env="SCORESTREAM_LABELS_TOPIC",
        default=window.labels_topic,
        help="topic of labels {event_id, label, label_time}",
    )
    opt.add(
        p,
        "--input-topic",
        env="SCORESTREAM_INPUT_TOPIC",
        default=window.input_topic,
        help="topic of the feature events the scorer read",
    )
    opt.add(
        p,
        "--input-format",
        env="SCORESTREAM_INPUT_FORMAT",
        default=window.input_format.kind,
        choices=FORMATS,
        help="encoding of the input events (as the scorer's --input-format)",
    )
    opt.add(
        p,
        "--writer-schema",
        env="SCORESTREAM_WRITER_SCHEMA",
        default="",
        help="Avro schema the producers write with, if not the reader schema",
    )
    opt.add(
        p,
        "--features",
        env="SCORESTREAM_RETRAIN_FEATURES",
        default="",
        help="landing table (Parquet/CSV path) with event ids and features, instead of the "
        "input topic",
    )
    opt.add(
        p,
        "--format",
        env="SCORESTREAM_DATA_FORMAT",
        default=window.features_format,
        help="format of --features: csv or parquet (default: from the name)",
    )
    opt.add(
        p,
        "--since",
        env="SCORESTREAM_RETRAIN_SINCE",
        default=window.since_s,
        type=duration,
        action=_Given,
        help="labels of this long back from now (30m, 2h, 1d)",
    )
    opt.add(
        p,
        "--last",
        env="SCORESTREAM_RETRAIN_LAST",
        default=0,
        type=int,
        help="instead of --since: the last N records of each labels partition (0: use --since)",
    )
    opt.add(
        p,
        "--label-delay",
        env="SCORESTREAM_LABEL_DELAY",
        default=window.label_delay_s,
        type=duration,
        help="how long before the first label the input topic is read (labels come late)",
    )
    opt.add(
        p,
        "--min-rows",
        env="SCORESTREAM_RETRAIN_MIN_ROWS",
        default=retrain.min_rows,
        type=opt.positive_int,
        help="labelled events needed to train",
    )
    opt.add(
        p,
        "--base",
        env="SCORESTREAM_RETRAIN_BASE",
        default=retrain.base,
        help="version whose spec and estimator settings are reused (the parent)",
    )
    opt.add(
        p,
        "--every",
        env="SCORESTREAM_RETRAIN_EVERY",
        default=schedule.every_s,
        type=duration,
        help="retrain on a schedule (10m, 1h) until SIGTERM (unset: once)",
    )
    opt.add(
        p,
        "--on-drift",
        env="SCORESTREAM_RETRAIN_ON_DRIFT",
        default="",
        help="retrain when the scorer's drift gauges at this /metrics URL alert "
        "(http://127.0.0.1:9400/metrics)",
    )
    opt.add(
        p,
        "--psi-threshold",
        env="SCORESTREAM_RETRAIN_PSI",
        default=drift.psi_threshold,
        type=opt.non_negative_float,
        help="--on-drift: the worst feature or score PSI that fires",
    )
    opt.add(
        p,
        "--min-window",
        env="SCORESTREAM_RETRAIN_MIN_WINDOW",
        default=drift.min_window,
        type=opt.positive_int,
        help="--on-drift: scored events the drift window must hold before an alert counts",
    )
    opt.add(
        p,
        "--poll-interval",
        env="SCORESTREAM_RETRAIN_POLL",
        default=schedule.poll_s,
        type=duration,
        help="--on-drift: how often the metrics are read",
    )
    opt.add(
        p,
        "--max-runs",
        env="SCORESTREAM_RETRAIN_MAX_RUNS",
        default=0,
        type=int,
        help="--every/--on-drift: stop after this many retrainings (0: until SIGTERM)",
    )
