"""The Spark side of the benchmark, one process per run: prepare, scorer variants, batch scoring.

Each contender runs in its own process so its peak memory (the Python driver and its JVM) is
its own. A run prints JSON lines on stdout: {"event": "ready", "t": ...} just before it starts
consuming, and {"event": "done", ...} with its counts and Spark's per-trigger durations.

    python -m benchmarks.worker prepare --registry R --card C [--rows N]
    python -m benchmarks.worker scorer --bootstrap B --registry R --input-topic I ... [--mode]
    python -m benchmarks.worker batch --registry R --input events.parquet --output out.parquet
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from scorestream.kafka import KafkaSettings

DURATION_KEYS = (
    "triggerExecution",
    "latestOffset",
    "queryPlanning",
    "getBatch",
    "walCommit",
    "addBatch",
    "commitOffsets",
    "commitBatch",
)


def _emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), **data}), flush=True)


def _spark(app: str, master: str | None = None, driver_memory: str = "") -> Any:
    from scorestream.spark import SparkSettings, session

    memory = {"driver_memory": driver_memory} if driver_memory else {}
    return session(SparkSettings(app_name=app, master=master, shuffle_partitions=2, **memory))


def cmd_prepare(args: argparse.Namespace) -> int:
    """Train one model into a fresh registry and export its coefficients card."""
    from scorestream.contract.synthetic import SPEC
    from scorestream.models.export import export
    from scorestream.models.registry import Registry
    from scorestream.models.train import TrainSettings, synthetic_frame, train

    spark = _spark("bench-prepare")
    try:
        entry = train(
            spark,
            synthetic_frame(spark, args.rows, seed=args.seed),
            SPEC,
            TrainSettings(registry=args.registry, seed=args.seed),
            fingerprint=f"synthetic:rows={args.rows}:seed={args.seed}",
            source="synthetic",
            progress=lambda _m: None,
        )
        loaded, model = Registry(args.registry).load(entry.version)
        export(spark, loaded, model, "coefficients", args.card)
    finally:
        spark.stop()
    _emit("done", version=entry.version)
    return 0


def progress_summary(progresses: list[Any]) -> dict[str, Any]:
    """Spark's query progress: per-trigger durations (ms) summed and per batch, rows per batch."""
    totals = dict.fromkeys(DURATION_KEYS, 0.0)
    rows = 0
    batches = 0
    for p in progresses:
        data = json.loads(p.json) if hasattr(p, "json") else dict(p)
        n = int(data.get("numInputRows") or 0)
        if n == 0:
            continue
        batches += 1
        rows += n
        for key, value in (data.get("durationMs") or {}).items():
            totals[key] = totals.get(key, 0.0) + float(value)
    per_batch = {k: (v / batches if batches else 0.0) for k, v in totals.items() if v}
    return {"batches": batches, "rows": rows, "total_ms": totals, "per_batch_ms": per_batch}


class _BatchTimes:
    """A BatchListener that only records each batch's duration inside foreachBatch."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.rows: list[int] = []
        self.phases: dict[str, float] = {}

    def on_batch(self, scored: Any, stats: Any) -> None:
        self.durations.append(stats.duration_s)
        self.rows.append(stats.records_in)
        for name, seconds in stats.phases.items():
            self.phases[name] = self.phases.get(name, 0.0) + seconds


def _start_onesink(scorer: Any) -> Any:
    """The real-time scorer's single-sink query on a micro-batch trigger: no foreachBatch, no
    cache, with the offset and commit logs written off the batch's critical path
    (asynchronous progress tracking, which only the Kafka sink supports)."""
    scorer.preflight()
    writer = scorer.writer(linger_ms=5).option("asyncProgressTrackingEnabled", "true")
    scorer.query = writer.start()
    return scorer.query


def cmd_scorer(args: argparse.Namespace) -> int:
    """One scorer variant on one input topic, until SIGTERM."""
    from scorestream.streaming.avro_input import InputFormat
    from scorestream.streaming.job import Scorer
    from scorestream.streaming.settings import ScorerSettings

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    kafka = KafkaSettings(bootstrap=args.bootstrap)
    settings = ScorerSettings(
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        dead_letter_topic=args.dlq_topic,
        registry=args.registry,
        checkpoint=args.checkpoint,
        # Real-time mode refuses maxOffsetsPerTrigger (one long-running batch per partition).
        max_offsets_per_trigger=(
            args.max_offsets_per_trigger or None if args.mode != "realtime" else None
        ),
        input_format=InputFormat(kind=args.input_format),
        exactly_once=args.exactly_once,
        compiled=args.compiled,
        topic_partitions=2,
    )
    # A monitored real-time scorer needs a task slot per input partition plus one for its
    # metrics query (streaming.realtime.monitor_slots), as `scorestream score` gives it.
    monitored = args.mode == "realtime" and bool(args.monitor_interval)
    master = "local[3]" if monitored else None
    spark = _spark(f"bench-{args.mode}", master, args.driver_memory)
    times = _BatchTimes()
    monitor: Any = None
    watcher: Any = None
    scorer: Any
    if args.mode in ("realtime", "onesink"):
        from scorestream.streaming.realtime import RealtimeScorer, RealtimeSettings

        scorer = RealtimeScorer(spark, kafka, settings, RealtimeSettings(args.realtime_checkpoint))
        if monitored:
            from scorestream.monitoring.settings import MonitorSettings
            from scorestream.streaming.job import Scorer
            from scorestream.streaming.monitor import ScorerMonitor
            from scorestream.streaming.realtime import monitor_settings

            monitor = ScorerMonitor(spark, MonitorSettings(metrics_port=0, drift=True))
            watched = monitor_settings(settings, args.monitor_interval)
            watcher = Scorer(spark, kafka, watched, [monitor])
            monitor.attach(watcher, progress_of=lambda: scorer.query)
    else:
        listeners: list[Any] = [times]
        if args.drift:
            from scorestream.monitoring.settings import MonitorSettings
            from scorestream.streaming.monitor import ScorerMonitor

            monitor = ScorerMonitor(spark, MonitorSettings(metrics_port=0, drift=True))
            listeners.append(monitor)
        scorer = Scorer(spark, kafka, settings, listeners=listeners)
        if monitor is not None:
            monitor.attach(scorer)
    failure = ""
    try:
        _emit("ready")
        query = _start_onesink(scorer) if args.mode == "onesink" else scorer.start()
        if watcher is not None:
            watcher.start()
        while not stop.wait(0.5):
            if not query.isActive:
                scorer.raise_if_failed()
                failure = "query stopped by itself"
                break
        progresses = list(query.recentProgress)
    except Exception as exc:
        failure = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        progresses = []
    finally:
        if watcher is not None:
            watcher.stop()
        scorer.stop()
        if monitor is not None:
            monitor.close()
    done: dict[str, Any] = {"progress": progress_summary(progresses)}
    if times.durations:
        done["foreach_batch_s"] = {
            "batches": len(times.durations),
            "mean": sum(times.durations) / len(times.durations),
            "max": max(times.durations),
            "rows_mean": sum(times.rows) / len(times.rows),
            "phases_mean": {k: v / len(times.durations) for k, v in times.phases.items()},
        }
    if monitor is not None:
        done["monitor_s"] = monitor.spent_s
    if hasattr(scorer, "totals"):
        t = scorer.totals
        done["totals"] = {"in": t.records_in, "scored": t.scored, "dead": t.dead_lettered}
    if failure:
        done["error"] = failure
    spark.stop()
    _emit("done", **done)
    return 1 if failure else 0


def cmd_floor(args: argparse.Namespace) -> int:
    """Spark's own floor: Kafka -> Kafka with no scorestream code, until SIGTERM.

    `--parse none` moves the bytes through; `--parse json` decodes each value with the event
    schema and encodes it again (`from_json` -> `to_json`), the least a JSON scorer must do.
    The key (the event id) and `event_time` pass through, so the harness counts and times the
    output as it does the scorer's.
    """
    from pyspark.sql import functions as F

    from scorestream.avro import EVENT_SCHEMA, read_schema
    from scorestream.streaming.realtime import apply_trigger

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    kafka = KafkaSettings(bootstrap=args.bootstrap)
    spark = _spark(f"bench-floor-{args.parse}-{args.mode}", driver_memory=args.driver_memory)
    reader = (
        spark.readStream.format("kafka")
        .options(**kafka.spark_options())
        .option("subscribe", args.input_topic)
        .option("startingOffsets", "earliest")
    )
    if args.max_offsets_per_trigger and args.mode == "microbatch":
        reader = reader.option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
    source = reader.load()
    if args.parse == "json":
        # event_time stays text (ISO-8601 in JSON events), so the output carries it unchanged.
        fields = ", ".join(
            f"`{f['name']}` STRING"
            if f["name"] == "event_time" or "string" in str(f["type"])
            else f"`{f['name']}` DOUBLE"
            for f in read_schema(EVENT_SCHEMA)["fields"]
        )
        parsed = F.from_json(F.col("value").cast("string"), fields)
        out = source.select(F.col("key"), F.to_json(parsed).alias("value"))
    else:
        out = source.select("key", "value")
    linger = 0 if args.mode == "realtime" else 5
    writer = (
        out.writeStream.format("kafka")
        .options(**kafka.spark_sink_options(linger_ms=linger))
        .option("topic", args.output_topic)
        .option("checkpointLocation", str(args.checkpoint))
    )
    if args.mode == "realtime":
        writer = writer.outputMode("update")
        apply_trigger(writer, spark, args.realtime_checkpoint)
    failure = ""
    progresses: list[Any] = []
    try:
        _emit("ready")
        query = writer.start()
        while not stop.wait(0.5):
            if not query.isActive:
                exc = query.exception()
                failure = str(exc).splitlines()[0] if exc else "query stopped by itself"
                break
        progresses = list(query.recentProgress)
        query.stop()
    except Exception as exc:
        failure = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    spark.stop()
    done: dict[str, Any] = {"progress": progress_summary(progresses)}
    if failure:
        done["error"] = failure
    _emit("done", **done)
    return 1 if failure else 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Spark batch scoring of the events file with the same model (the ceiling of Spark)."""
    from scorestream.models.batch import score_frame
    from scorestream.models.registry import Registry

    spark = _spark("bench-batch")
    try:
        entry, model = Registry(args.registry).load("champion")
        _emit("ready")
        frame = spark.read.parquet(str(args.input))
        scored = score_frame(frame, entry, model)
        scored.write.mode("overwrite").parquet(str(args.output))
        finished = time.time()
    finally:
        spark.stop()
    _emit("done", finished=finished)
    return 0


def main(argv: list[str] | None = None) -> int:
    from scorestream.models.parity import COMPILE_MODES
    from scorestream.streaming.settings import ScorerSettings  # the scorer's own default

    # The scorer's per-batch lines (with their phase timings) go to the run's log at INFO.
    logging.basicConfig(
        level=os.environ.get("SCORESTREAM_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    p = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="train a model into a registry, export its card")
    prep.add_argument("--registry", required=True, type=Path)
    prep.add_argument("--card", required=True, type=Path)
    prep.add_argument("--rows", type=int, default=20_000)
    prep.add_argument("--seed", type=int, default=11)
    sc = sub.add_parser("scorer", help="run one scorer variant until SIGTERM")
    sc.add_argument("--bootstrap", required=True)
    sc.add_argument("--registry", required=True, type=Path)
    sc.add_argument("--checkpoint", required=True, type=Path)
    sc.add_argument("--input-topic", required=True)
    sc.add_argument("--output-topic", required=True)
    sc.add_argument("--dlq-topic", required=True)
    # onesink: the real-time scorer's query (scoring plan -> Kafka sink, no foreachBatch) on a
    # micro-batch trigger with asynchronous progress tracking (issue 17, item 5).
    sc.add_argument("--mode", choices=("microbatch", "realtime", "onesink"), default="microbatch")
    sc.add_argument("--input-format", choices=("json", "avro"), default="json")
    sc.add_argument("--exactly-once", action="store_true")
    sc.add_argument("--drift", action="store_true", help="attach the drift monitor")
    sc.add_argument("--compiled", choices=COMPILE_MODES, default=ScorerSettings.compiled)
    sc.add_argument("--max-offsets-per-trigger", type=int, default=0)
    sc.add_argument("--realtime-checkpoint", default="5 seconds")
    sc.add_argument(
        "--monitor-interval", default="", help="real-time mode: the metrics query's trigger"
    )
    sc.add_argument("--driver-memory", default="", help="default: scorestream's")
    fl = sub.add_parser("floor", help="Spark Kafka -> Kafka with no scorestream code")
    fl.add_argument("--bootstrap", required=True)
    fl.add_argument("--checkpoint", required=True, type=Path)
    fl.add_argument("--input-topic", required=True)
    fl.add_argument("--output-topic", required=True)
    fl.add_argument("--dlq-topic", required=True, help="unused: nothing is dead-lettered")
    fl.add_argument("--parse", choices=("none", "json"), default="none")
    fl.add_argument("--mode", choices=("microbatch", "realtime"), default="microbatch")
    fl.add_argument("--max-offsets-per-trigger", type=int, default=0)
    fl.add_argument("--realtime-checkpoint", default="5 seconds")
    fl.add_argument("--driver-memory", default="", help="default: scorestream's")
    ba = sub.add_parser("batch", help="Spark batch scoring of a Parquet file")
    ba.add_argument("--registry", required=True, type=Path)
    ba.add_argument("--input", required=True, type=Path)
    ba.add_argument("--output", required=True, type=Path)
    args = p.parse_args(argv)
    handlers = {
        "prepare": cmd_prepare,
        "scorer": cmd_scorer,
        "floor": cmd_floor,
        "batch": cmd_batch,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
