"""Monitoring flags of the scorer and the demo, and the subcommand `drift-report`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream import options as opt
from scorestream.cli.common import Command, registry_arg, spark_args, spark_session
from scorestream.errors import ConfigError
from scorestream.monitoring.settings import MonitorSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FORMATS = ("csv", "parquet", "json")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "json"}


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 for any free port."""
    try:
        value = int(text)
    except ValueError as exc:
        msg = f"expected a port number in [0, 65535], got {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if not 0 <= value <= 65535:
        msg = f"expected a port number in [0, 65535], got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def metrics_args(p: argparse.ArgumentParser) -> None:
    """The exporter's address and port and the drift window (scorer and demo)."""
    d = MonitorSettings()  # each default is the settings field's, written once
    opt.add(
        p,
        "--metrics-address",
        env="SCORESTREAM_METRICS_ADDRESS",
        default=d.metrics_address,
        help="address the Prometheus exporter listens on",
    )
    opt.add(
        p,
        "--metrics-port",
        env="SCORESTREAM_METRICS_PORT",
        default=d.metrics_port,
        type=port_number,
        help="port of the Prometheus exporter (/metrics); 0 picks a free port",
    )
    opt.add(
        p,
        "--drift",
        env="SCORESTREAM_DRIFT",
        default=d.drift,
        type=opt.bool_flag,
        help="compute feature and prediction drift against the model's reference profile",
    )
    opt.add(
        p,
        "--drift-window-events",
        env="SCORESTREAM_DRIFT_WINDOW_EVENTS",
        default=d.window_events,
        type=int,
        help="drift over the last N scored events (0: no event limit)",
    )
    opt.add(
        p,
        "--drift-window-minutes",
        env="SCORESTREAM_DRIFT_WINDOW_MINUTES",
        default=0.0,  # the field's None (no time limit)
        type=opt.non_negative_float,
        help="drift over the batches of the last T minutes (0: no time limit)",
    )


def monitor_settings(args: argparse.Namespace) -> MonitorSettings:
    if args.drift_window_events < 0:
        msg = f"--drift-window-events must be >= 0 (0: no limit), got {args.drift_window_events}"
        raise ConfigError(msg)
    return MonitorSettings(
        metrics_address=args.metrics_address,
        metrics_port=args.metrics_port,
        drift=args.drift,
        window_events=args.drift_window_events or None,
        window_seconds=args.drift_window_minutes * 60 or None,
    )


def read_events(spark: SparkSession, path: Path, fmt: str) -> DataFrame:
    """A file (or folder) of events as a DataFrame; fmt auto follows the suffix."""
    if not path.exists():
        msg = f"event file {path} does not exist"
        raise ConfigError(msg)
    if fmt == "auto":
        fmt = SUFFIXES.get(path.suffix.lower(), "")
        if not fmt:
            msg = (
                f"cannot tell the format of {path} from its suffix; expected one of "
                f"{sorted(SUFFIXES)} or --format {'|'.join(FORMATS)}"
            )
            raise ConfigError(msg)
    reader = spark.read
    if fmt == "csv":
        return reader.option("header", "true").csv(str(path))
    if fmt == "parquet":
        return reader.parquet(str(path))
    return reader.json(str(path))  # JSON lines: one event per line


def cmd_drift_report(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from scorestream.models.registry import Registry
    from scorestream.models.scoring import score, typed_features
    from scorestream.monitoring.counting import BinCounter
    from scorestream.monitoring.drift import ReferenceProfile, drift_report
    from scorestream.monitoring.report import band, write_report
    from scorestream.monitoring.window import WindowTotals

    registry = Registry(args.registry)
    version = registry.resolve(args.model)
    entry = registry.get(version)
    profile = ReferenceProfile.from_dict(entry.profile())
    spec = entry.spec
    spark = spark_session(args, "scorestream-drift-report")
    events = read_events(spark, Path(args.events), args.format)
    absent = sorted(set(spec.feature_names) - set(events.columns))
    if absent:
        msg = (
            f"{args.events} lacks the feature columns {absent} that model v{version} reads "
            f"(it has {sorted(events.columns)})"
        )
        raise ConfigError(msg)
    # A value that is not a number counts as missing here: the report shows its missing rate.
    features = events.select(*[F.col(f"`{n}`") for n in spec.feature_names])
    typed = typed_features(features, spec, on_bad="null", where=args.events)
    _, model = registry.load(version)
    scored = score(typed, model, version)
    batch = BinCounter(profile).count(scored)
    if batch.rows == 0:
        msg = f"{args.events} holds no events"
        raise ConfigError(msg)
    totals = WindowTotals(batch.rows, 1, batch.counts, batch.missing)
    report = drift_report(profile, totals)
    title = f"Drift of {Path(args.events).name} against model v{version}"
    files = write_report(profile, totals, report, Path(args.output), title)
    print(f"{'feature':<26} {'kind':<12} {'PSI':>8} {'JS':>8} {'missing':>8}  band")
    for d in report:
        name = "score" if d.kind == "prediction" else d.feature
        print(
            f"{name:<26} {d.kind:<12} {d.psi:>8.4f} {d.js:>8.4f} {d.missing_rate:>8.2%}  "
            f"{band(d.psi)}"
        )
    print(f"{batch.rows} events vs {profile.rows} training rows")
    print(f"wrote {files.png} and {files.html}")
    return 0


def register(command: Command) -> None:
    """Add `drift-report` to the CLI."""
    p = command(
        "drift-report",
        cmd_drift_report,
        "PNG and HTML report of a file of events against a model version's training profile",
    )
    p.add_argument("events", help="CSV (with header), Parquet or JSON-lines file of events")
    opt.add(
        p,
        "--format",
        env="SCORESTREAM_EVENTS_FORMAT",
        default="auto",
        choices=["auto", *FORMATS],
        help="format of the event file (auto: from its suffix)",
    )
    opt.add(
        p,
        "--model",
        env="SCORESTREAM_MODEL",
        default="champion",
        help="model version whose reference profile to compare with: champion, latest or vN",
    )
    opt.add(
        p,
        "--output",
        env="SCORESTREAM_REPORT_DIR",
        default="drift-report",
        help="folder for drift-report.png and drift-report.html",
    )
    registry_arg(p)
    spark_args(p)
