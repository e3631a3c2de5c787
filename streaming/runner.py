"""One lifecycle for a scoring query: preflight, start, run until a signal or failure, stop, report.

`QueryRunner` owns the order and the signal handling; what differs between the trigger modes is
a `QueryStrategy`: `MicroBatch` (the Scorer, streaming/job.py) or `RealTime` (the real-time
query, streaming/realtime.py, with the micro-batch query that feeds its metrics).

    runner = QueryRunner(MicroBatch(scorer, metrics_url=monitor.url), closers=[monitor.close])
    return runner.run()  # until SIGTERM or Ctrl-C: 0 after a clean stop, raises on a failure
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from scorestream.errors import ConfigError, ScorestreamError
from scorestream.kafka import KafkaSettings, topic_partitions
from scorestream.streaming.realtime import monitor_slots

if TYPE_CHECKING:
    from scorestream.streaming.job import Scorer
    from scorestream.streaming.realtime import RealtimeScorer

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class QueryStrategy(Protocol):
    """One way of running the scoring query, driven by a QueryRunner."""

    # What a stop signal says will happen, e.g. "stopping after the current batch".
    stop_note: str

    def start(self) -> None:
        """Check the set-up (preflight) and start the query or queries."""

    def wait_ready(self, timeout_s: float) -> None:
        """Return once the query waits for data; raise if it fails or times out first."""

    def started(self) -> str:
        """The line that tells the user what runs (after start)."""

    def active(self) -> bool:
        """True while the query runs (or is about to be restarted)."""

    def raise_if_failed(self) -> None:
        """Raise ScorestreamError with the reason if the query ended by a failure."""

    def stop(self) -> None:
        """Stop gracefully (a micro-batch scorer finishes its batch); safe to call twice."""

    def report(self) -> str:
        """The last line after a clean stop."""


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class QueryRunner:
    """Runs a strategy: start, wait for a stop signal or the query's end, stop, report.

    `closers` run after the strategy stopped, in order (the metrics exporter, feedback loops):
    once, whether the run ended by a signal, a failure or a failed start.
    """

    def __init__(
        self,
        strategy: QueryStrategy,
        closers: Sequence[Callable[[], None]] = (),
        say: Callable[[str], None] = _say,
        poll_s: float = 1.0,
    ) -> None:
        self.strategy = strategy
        self.closers = tuple(closers)
        self.say = say
        self.poll_s = poll_s
        self.stop_requested = threading.Event()
        self._stopped = False

    def start(self, ready_timeout_s: float | None = None) -> None:
        """Preflight and start; with a timeout, also wait until the query waits for data."""
        self.strategy.start()
        if ready_timeout_s is not None:
            self.strategy.wait_ready(ready_timeout_s)

    def raise_if_failed(self) -> None:
        self.strategy.raise_if_failed()

    def stop(self) -> None:
        """Stop the strategy, then run the closers; only the first call does anything."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.strategy.stop()
        finally:
            for close in self.closers:
                close()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.say(f"\n{signal.Signals(signum).name}: {self.strategy.stop_note}")
        self.stop_requested.set()

    def run(self, ready_timeout_s: float | None = None) -> int:
        """Run until SIGTERM, Ctrl-C or the query's end (call from the main thread).

        Returns 0 after a stop asked for; a query that ended by itself raises its failure
        (ScorestreamError) once everything is stopped, since a stop silences failures.
        """
        stop = self.stop_requested
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            try:
                self.start(ready_timeout_s)
            except BaseException:
                self.stop()
                raise
            self.say(self.strategy.started())
            while not stop.is_set() and self.strategy.active():
                stop.wait(self.poll_s)
            failure: ScorestreamError | None = None
            if not stop.is_set():  # the query ended by itself: say why
                try:
                    self.strategy.raise_if_failed()
                except ScorestreamError as exc:
                    failure = exc
            self.stop()
            if failure is not None:
                raise failure
            self.say(self.strategy.report())
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _metrics_note(url: str) -> str:
    return f"; metrics on {url}" if url else ""


class MicroBatch:
    """The micro-batch Scorer as a QueryStrategy."""

    stop_note = "stopping after the current batch"

    def __init__(self, scorer: Scorer, metrics_url: str = "") -> None:
        self.scorer = scorer
        self.metrics_url = metrics_url

    def start(self) -> None:
        self.scorer.start()

    def wait_ready(self, timeout_s: float) -> None:
        self.scorer.wait_ready(timeout_s)

    def started(self) -> str:
        s = self.scorer.settings
        return (
            f"scoring {s.input_topic} -> {s.output_topic} "
            f"(dead letters: {s.topics.dead_letter}) with model "
            f"v{self.scorer.holder.version}; checkpoint {s.checkpoint_dir}"
            + _metrics_note(self.metrics_url)
        )

    def active(self) -> bool:
        return self.scorer.active()

    def raise_if_failed(self) -> None:
        self.scorer.raise_if_failed()

    def stop(self) -> None:
        self.scorer.stop()

    def report(self) -> str:
        t = self.scorer.totals
        return (
            f"stopped: {t.records_in} records in, {t.scored} scored, "
            f"{t.dead_lettered} dead-lettered in {t.batches} batches"
        )


class RealTime:
    """The real-time query as a QueryStrategy, with the micro-batch query that feeds its
    metrics (`watcher`, see streaming.realtime.monitor_settings) when there is one."""

    stop_note = "stopping"

    def __init__(
        self,
        scorer: RealtimeScorer,
        kafka: KafkaSettings,
        watcher: Scorer | None = None,
        metrics_url: str = "",
    ) -> None:
        self.scorer = scorer
        self.kafka = kafka
        self.watcher = watcher
        self.metrics_url = metrics_url

    def start(self) -> None:
        self.scorer.start()
        if self.watcher is None:
            return
        slots = self.scorer.spark.sparkContext.defaultParallelism
        needed = monitor_slots(topic_partitions(self.kafka, self.scorer.settings.input_topic))
        if slots < needed:
            self.scorer.stop()
            msg = (
                f"real-time mode with metrics needs {needed} task slots (one per input "
                f"partition and one for the metrics query) but Spark has {slots}; run with "
                f"--master local[{needed}], or --realtime-monitor-interval '' for no metrics"
            )
            raise ConfigError(msg)
        self.watcher.start()

    def wait_ready(self, timeout_s: float) -> None:
        """The real-time query starts its long-running tasks at once; what is waited for is
        the metrics query, which then has read the same input once."""
        self.scorer.raise_if_failed()
        if self.watcher is not None:
            self.watcher.wait_ready(timeout_s)

    def started(self) -> str:
        s = self.scorer.settings
        return (
            f"real-time scoring {s.input_topic} -> {s.output_topic} "
            f"(dead letters: {s.topics.dead_letter}) with model v{self.scorer.version} (fixed "
            f"until restart); checkpoint {s.checkpoint_dir} every "
            f"{self.scorer.realtime.checkpoint_interval}" + _metrics_note(self.metrics_url)
        )

    def active(self) -> bool:
        query = self.scorer.query
        return query is not None and query.isActive

    def raise_if_failed(self) -> None:
        self.scorer.raise_if_failed()

    def stop(self) -> None:
        try:
            if self.watcher is not None:
                self.watcher.stop()
        finally:
            self.scorer.stop()

    def report(self) -> str:
        return "stopped"
