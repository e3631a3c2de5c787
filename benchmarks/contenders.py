"""The contenders: the scorer's variants and the peers, each a process the harness starts."""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Contender:
    """One thing measured: how to start it and which figures apply to it."""

    name: str
    label: str
    kind: str  # scorer, floor (Spark alone), peer or batch
    input_format: str = "json"
    latency: bool = True  # measured at fixed rates (streaming contenders)
    committed: bool = False  # its output is read with read_committed
    extra: tuple[str, ...] = ()

    @property
    def realtime(self) -> bool:
        """Spark's real-time trigger (the scorer's or the floor's)."""
        return ("--mode", "realtime") in itertools.pairwise(self.extra)

    def command(
        self,
        bootstrap: str,
        registry: Path,
        card: Path,
        checkpoint: Path,
        topics: tuple[str, str, str],
        max_offsets_per_trigger: int,
        realtime_checkpoint: str = "",
        driver_memory: str = "",
    ) -> list[str]:
        """The command line of a streaming run reading topics[0], writing topics[1] (+ DLQ);
        a real-time one checkpoints every `realtime_checkpoint`, and a Spark one runs with
        `driver_memory` (its JVM's heap in local mode), when they are given."""
        source, output, dead = topics
        extra = list(self.extra)
        if realtime_checkpoint and self.realtime:
            extra += ["--realtime-checkpoint", realtime_checkpoint]
        if driver_memory:
            extra += ["--driver-memory", driver_memory]
        py = sys.executable
        if self.kind == "peer":
            module = "benchmarks.peer_a" if self.name == "peer-a" else "benchmarks.peer_b"
            cmd = [py, "-m", module, "--bootstrap", bootstrap]
            if self.name == "peer-a":
                cmd += ["--card", str(card)]
            return [
                *cmd,
                "--input-topic",
                source,
                "--output-topic",
                output,
                "--dlq-topic",
                dead,
                *self.extra,
            ]
        # Spark's floor runs the worker with no model; the scorer variants read the registry.
        mode, model = (
            ("floor", []) if self.kind == "floor" else ("scorer", ["--registry", str(registry)])
        )
        return [
            py,
            "-m",
            "benchmarks.worker",
            mode,
            "--bootstrap",
            bootstrap,
            *model,
            "--checkpoint",
            str(checkpoint),
            "--input-topic",
            source,
            "--output-topic",
            output,
            "--dlq-topic",
            dead,
            "--max-offsets-per-trigger",
            str(max_offsets_per_trigger),
            *extra,
        ]


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("scorer-json", "scorer, micro-batch, JSON, defaults", "scorer"),
        Contender(
            "scorer-avro",
            "scorer, micro-batch, Avro",
            "scorer",
            input_format="avro",
            extra=("--input-format", "avro"),
        ),
        Contender(
            "scorer-realtime",
            "scorer, real-time mode, JSON",
            "scorer",
            extra=("--mode", "realtime"),
        ),
        Contender(
            "scorer-realtime-mon",
            "scorer, real-time mode, JSON + metrics query",
            "scorer",
            extra=("--mode", "realtime", "--monitor-interval", "10 seconds"),
        ),
        Contender(
            "scorer-onesink",
            "scorer, micro-batch, one Kafka sink, no foreachBatch",
            "scorer",
            extra=("--mode", "onesink"),
        ),
        Contender(
            "scorer-pipeline",
            "scorer, micro-batch, JSON, PipelineModel (--compiled off)",
            "scorer",
            extra=("--compiled", "off"),
        ),
        Contender(
            "scorer-eo",
            "scorer, micro-batch, --exactly-once",
            "scorer",
            committed=True,
            extra=("--exactly-once",),
        ),
        Contender(
            "scorer-drift",
            "scorer, micro-batch, JSON + drift monitor",
            "scorer",
            latency=False,
            extra=("--drift",),
        ),
        # Spark's own floor on this machine: what a Kafka -> Kafka query costs before any
        # scorestream code (bytes through, then JSON parse + to_json), in both trigger modes.
        Contender(
            "spark-bytes", "Spark floor: Kafka -> Kafka bytes", "floor", extra=("--parse", "none")
        ),
        Contender(
            "spark-json", "Spark floor: from_json -> to_json", "floor", extra=("--parse", "json")
        ),
        Contender(
            "spark-bytes-rt",
            "Spark floor: bytes, real-time mode",
            "floor",
            extra=("--parse", "none", "--mode", "realtime"),
        ),
        Contender(
            "spark-json-rt",
            "Spark floor: JSON, real-time mode",
            "floor",
            extra=("--parse", "json", "--mode", "realtime"),
        ),
        Contender("peer-a", "peer A: Python + numpy coefficients", "peer"),
        Contender("peer-b", "peer B: raw pass-through", "peer"),
        Contender("spark-batch", "Spark batch scoring of a file", "batch", latency=False),
    )
}


# Measured at fixed rates by default: what the latency targets and their floors need.
LATENCY_DEFAULT = (
    "scorer-json",
    "scorer-onesink",
    "scorer-realtime",
    "scorer-realtime-mon",
    "spark-json",
    "spark-json-rt",
    "peer-b",
)


def pick(names: str) -> list[Contender]:
    """Contenders by a comma-separated list of names ('all' for every one)."""
    from scorestream.errors import ConfigError

    if names.strip() in ("", "all"):
        return list(CONTENDERS.values())
    chosen = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in CONTENDERS:
            msg = f"unknown contender {name!r}; expected some of {', '.join(CONTENDERS)}"
            raise ConfigError(msg)
        chosen.append(CONTENDERS[name])
    return chosen
