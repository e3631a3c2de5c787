"""Cost of --exactly-once against the default at-least-once sink: backlog throughput and
end-to-end latency at a fixed rate, on a local broker started for the run.

    .venv/bin/python benchmarks/delivery_modes.py --events 100000 --rate 2000 --seconds 20
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from scorestream.contract.synthetic import SPEC
from scorestream.kafka import KafkaSettings, ensure_topics
from scorestream.models.train import TrainSettings, synthetic_frame, train
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.producers.subscriber import ScoreSummary, iter_scores
from scorestream.spark import SparkSettings, session
from scorestream.stack import LocalKafka, StackSettings, free_port_block
from scorestream.streaming.job import Scorer
from scorestream.streaming.listeners import BatchStats
from scorestream.streaming.settings import ScorerSettings


class Durations:
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_batch(self, _scored: Any, stats: BatchStats) -> None:
        self.values.append(stats.duration_s)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def run(spark: Any, kafka: KafkaSettings, registry: Path, args: argparse.Namespace) -> None:
    for exactly_once in (False, True):
        mode = "exactly-once" if exactly_once else "at-least-once"
        for phase in ("backlog", "rate"):
            tag = uuid.uuid4().hex[:6]
            source, output = f"bench-in-{tag}", f"bench-out-{tag}"
            ensure_topics(kafka, [source, output], partitions=2)
            count = args.events if phase == "backlog" else int(args.rate * args.seconds)
            if phase == "backlog":
                publish(kafka, ProduceSettings(topic=source, count=count, seed=1))
            durations = Durations()
            settings = ScorerSettings(
                input_topic=source,
                output_topic=output,
                registry=registry,
                checkpoint=Path(tempfile.mkdtemp()) / "ckpt",
                max_offsets_per_trigger=args.batch,
                exactly_once=exactly_once,
            )
            scorer = Scorer(spark, kafka, settings, listeners=[durations])
            scorer.start()
            scorer.wait_ready()
            producer = None
            if phase == "rate":
                producer = threading.Thread(
                    target=publish,
                    args=(kafka, ProduceSettings(topic=source, count=count, rate=args.rate)),
                    daemon=True,
                )
                producer.start()
            started = time.monotonic()
            summary = ScoreSummary()
            isolation = "read_committed" if exactly_once else "read_uncommitted"
            for _ in iter_scores(
                kafka, output, lambda s, n=count: s.count >= n, 600, summary, isolation=isolation
            ):
                pass
            elapsed = time.monotonic() - started
            scorer.stop()
            if producer is not None:
                producer.join(timeout=60)
            if phase == "backlog":
                print(
                    f"{mode:14s} backlog {count} events in {elapsed:.1f} s = "
                    f"{count / elapsed:,.0f} ev/s; batch p50 {_pct(durations.values, 50):.2f} s "
                    f"(batches of {args.batch})",
                    flush=True,
                )
            else:
                print(
                    f"{mode:14s} {args.rate:.0f} ev/s for {args.seconds:.0f} s: latency p50 "
                    f"{summary.percentile(50):.0f} ms p99 {summary.percentile(99):.0f} ms; "
                    f"batch p50 {_pct(durations.values, 50):.2f} s",
                    flush=True,
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=2_000)
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args()
    state = Path(tempfile.mkdtemp(prefix="scorestream-bench-"))
    stack = LocalKafka(StackSettings(state_dir=state / "stack", port=free_port_block(1)))
    stack.up()
    spark = session(SparkSettings(app_name="bench-delivery", shuffle_partitions=2))
    try:
        train(
            spark,
            synthetic_frame(spark, 6_000, seed=11),
            SPEC,
            TrainSettings(registry=state / "registry", seed=11),
            fingerprint="synthetic:rows=6000:seed=11",
            source="synthetic",
            progress=lambda _m: None,
        )
        run(spark, stack.kafka, state / "registry", args)
    finally:
        spark.stop()
        stack.down()


if __name__ == "__main__":
    main()
