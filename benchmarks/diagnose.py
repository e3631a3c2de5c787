"""Where a micro-batch's time goes, step by step, on a static DataFrame shaped like Kafka rows.

    python -m benchmarks.diagnose --registry R [--rows 5000] [--rounds 3]

Replays what streaming/job.py does per batch (apply the scoring plan, persist, write, count by
reason; the plan itself is built once per model version and timed apart) and times each step,
cold and warm, next to the pieces in isolation:
plan analysis in Python, Catalyst optimisation, physical planning, Janino code generation
(Spark's CodegenMetrics), `model.transform` + collect of one row, and validation alone.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return (time.perf_counter() - started) * 1000, value


class Codegen:
    """Janino compilation count and time from Spark's CodegenMetrics (a JVM histogram, ms)."""

    def __init__(self, spark: Any) -> None:
        jvm = spark.sparkContext._jvm
        self.hist = jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()

    def read(self) -> tuple[int, float]:
        snap = self.hist.getSnapshot()
        return int(self.hist.getCount()), float(sum(snap.getValues()))


def kafka_rows(spark: Any, rows: int, seed: int) -> Any:
    """A static DataFrame with the Kafka source's schema holding JSON events."""
    import datetime as dt

    from scorestream.contract.synthetic import iter_events
    from scorestream.producers.encoding import encode_json
    from scorestream.streaming.source import kafka_row_schema

    now = int(time.time() * 1000)
    stamp = dt.datetime.now(dt.UTC)
    data = []
    for i, event in enumerate(iter_events(rows, seed)):
        event["event_time"] = now
        data.append((str(event["event_id"]).encode(), encode_json(event), "t", i % 2, i, stamp, 0))
    return spark.createDataFrame(data, kafka_row_schema()).cache()


def one_round(spark: Any, raw: Any, entry: Any, model: Any) -> dict[str, float]:
    from pyspark import StorageLevel

    from scorestream.streaming.accounting import REASONS_TALLY, reasons_tally
    from scorestream.streaming.scoring import OutputFormat, ScoringPlan, Topics
    from scorestream.streaming.validate import REASON, ValidationSettings
    from scorestream.tally import tally

    spec = entry.spec
    cg = Codegen(spark)
    c0, t0 = cg.read()
    out: dict[str, float] = {}
    topics = Topics("o", "d")
    out["rdd_partitions_ms"], _ = _timed(lambda: raw.rdd.getNumPartitions())
    # Once per model version: the expressions and the model's JVM copy.
    out["plan_build_ms"], plan = _timed(
        lambda: ScoringPlan(raw, model, entry.version, spec, ValidationSettings())
    )
    # Per batch: applying them.
    out["plan_validate_ms"], validated = _timed(lambda: plan.validated(raw))
    out["plan_model_transform_ms"], scored_plan = _timed(lambda: plan.scored(raw))
    out["plan_to_kafka_ms"], sink = _timed(lambda: plan.kafka(scored_plan, topics, OutputFormat()))
    qe = sink._jdf.queryExecution()
    out["optimize_ms"], _ = _timed(lambda: qe.optimizedPlan())
    out["physical_plan_ms"], _ = _timed(lambda: qe.executedPlan())
    out["optimized_plan_chars"] = float(len(qe.optimizedPlan().toString()))
    c1, _t1 = cg.read()
    out["codegen_before_exec"] = float(c1 - c0)
    scored = scored_plan.persist(StorageLevel.MEMORY_AND_DISK)
    sink2 = plan.kafka(scored, topics, OutputFormat())
    out["write_noop_ms"], _ = _timed(lambda: sink2.write.format("noop").mode("overwrite").save())
    out["count_by_reason_ms"], _ = _timed(  # as the scorer counts a batch
        lambda: tally(scored.select(REASON).coalesce(1), {REASONS_TALLY: reasons_tally()})
    )
    scored.unpersist()
    c2, t2 = cg.read()
    out["codegen_compiles"] = float(c2 - c0)
    out["codegen_compile_ms"] = t2 - t0
    out["one_row_transform_collect_ms"], _ = _timed(
        lambda: model.transform(validated.limit(1)).select("probability").collect()
    )
    out["validate_only_noop_ms"], _ = _timed(
        lambda: validated.write.format("noop").mode("overwrite").save()
    )
    _c3, t3 = cg.read()
    out["codegen_compile_ms_total"] = t3 - t0
    return out


def main(argv: list[str] | None = None) -> int:
    from scorestream.models.registry import Registry
    from scorestream.spark import SparkSettings, session

    p = argparse.ArgumentParser(prog="python -m benchmarks.diagnose")
    p.add_argument("--registry", required=True, type=Path)
    p.add_argument("--rows", type=int, default=5_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    spark = session(SparkSettings(app_name="bench-diagnose", shuffle_partitions=2))
    try:
        load_ms, (entry, model) = _timed(lambda: Registry(args.registry).load("champion"))
        raw = kafka_rows(spark, args.rows, seed=3)
        raw.count()
        rounds = [one_round(spark, raw, entry, model) for _ in range(args.rounds)]
        report = {"rows": args.rows, "model_load_ms": load_ms, "rounds": rounds}
    finally:
        spark.stop()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
