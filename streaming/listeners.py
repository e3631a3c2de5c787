"""What a batch listener sees: the per-batch counts, the running totals and the listener protocols.

Listeners (monitoring, shadow scoring, feedback) import this module, not the engine
(streaming/job.py): the engine imports them, never the reverse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from scorestream.tally import Tallied, Tally

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.streaming import StreamingQuery

    from scorestream.models.source import ModelSource
    from scorestream.streaming.model_holder import ModelHolder


@dataclass
class BatchStats:
    """Counts of one micro-batch."""

    batch_id: int
    records_in: int
    scored: int
    dead_lettered: dict[str, int]
    duration_s: float
    model_version: int
    # exactly-once: the batch was committed by an earlier run and not published again.
    replay_skipped: bool = False
    # Seconds per step of the batch (plan, write, count, listeners), for logs and benchmarks.
    phases: dict[str, float] = field(default_factory=dict)
    # What the listeners' tallies found (see TallyingListener); False when they failed and
    # the batch was counted by reason alone.
    tallies: Tallied = field(default_factory=lambda: Tallied({}, {}))
    listener_tallies: bool = True


@dataclass
class Totals:
    """Running totals since the scorer started (what the demo and tests read)."""

    batches: int = 0
    records_in: int = 0
    scored: int = 0
    dead_lettered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stats: BatchStats) -> None:
        with self.lock:
            self.batches += 1
            self.records_in += stats.records_in
            self.scored += stats.scored
            self.dead_lettered += sum(stats.dead_lettered.values())


def listener_name(listener: object) -> str:
    """A listener's name in logs and metrics: its `name` attribute, else its class name."""
    return str(getattr(listener, "name", None) or type(listener).__name__)


class BatchListener(Protocol):
    """Called once per written micro-batch (monitoring plugs in here).

    `scored` is the batch after decoding, validation and scoring, cached while listeners run:
    typed feature columns, `_reason` (null for scored rows), `score`, `prediction`,
    `model_version`, `scored_at`. Listeners run on the scorer's accounting thread once the
    batch is on Kafka, overlapping the next batch (at most one batch is in flight:
    `Scorer.settle()` waits for it). A listener cannot fail the batch: its exceptions are
    logged and counted (`on_listener_failure`, scorestream_listener_failures_total) under its
    `name` attribute (else its class name).
    """

    def on_batch(self, scored: DataFrame, stats: BatchStats) -> None: ...


class TallyingListener(BatchListener, Protocol):
    """A listener whose per-batch numbers are counts (and sums) per key over the scored rows.

    `batch_tallies(version)` returns columns to add to the scored rows and named tallies over
    them (`scorestream.tally`; names unique across listeners). The scorer evaluates every
    listener's tallies and its own counts by reason in one Spark job per batch, and hands the
    result to `on_batch` in `stats.tallies`: one job instead of one per listener.
    """

    def batch_tallies(self, version: int) -> tuple[Sequence[Column], Mapping[str, Tally]]: ...


class Listened(Protocol):
    """What a listener's `attach()` reads of the scorer it listens to (the engine's Scorer)."""

    registry: ModelSource
    holder: ModelHolder
    query: StreamingQuery | None
    # Hears the name of every failed listener (the metrics count them).
    on_listener_failure: Callable[[str], None]
