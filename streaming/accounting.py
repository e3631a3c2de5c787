"""The accounting of written batches: counts by reason, the listeners' tallies and the listeners.

A written batch is counted and handed to the listeners on one thread of its own, overlapping
the next batch's trigger, planning and write; at most one batch is in flight (`settle`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from scorestream.contract.reasons import REASONS
from scorestream.errors import ScorestreamError
from scorestream.streaming.listeners import BatchListener, BatchStats, Totals, listener_name
from scorestream.streaming.validate import REASON
from scorestream.tally import Tallied, Tally, tally

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)


REASONS_TALLY = "__reasons"  # the scorer's own tally's name


@functools.cache
def reasons_tally() -> Tally:
    """The scorer's count of a batch's rows by reason: key 0 for a scored row, 1 + the index in
    REASONS for a dead-lettered one, -1 for any other reason (read by `by_reason`)."""
    from pyspark.sql import functions as F

    reason = F.col(REASON)
    key = F.when(reason.isNull(), F.lit(0))
    for i, code in enumerate(REASONS):
        key = key.when(reason == F.lit(code), F.lit(i + 1))
    return Tally(key.otherwise(F.lit(-1)))


def by_reason(tallied: Tallied) -> dict[str | None, int]:
    """Records by reason (None: scored) from the tally of `reasons_tally()`."""
    counts: dict[str | None, int] = {None: tallied.count(REASONS_TALLY, 0)}
    for i, code in enumerate(REASONS):
        if tallied.count(REASONS_TALLY, i + 1):
            counts[code] = tallied.count(REASONS_TALLY, i + 1)
    unknown = tallied.count(REASONS_TALLY, -1)
    if unknown:  # validation only sets REASONS; fail loudly rather than lose count
        msg = f"{unknown} dead-lettered record(s) have a reason outside {', '.join(REASONS)}"
        raise ScorestreamError(msg)
    return counts


class Accountant:
    """Counts each written batch by reason, runs the listeners and keeps the totals."""

    def __init__(self, listeners: Sequence[BatchListener] = ()) -> None:
        self.listeners = tuple(listeners)
        self.listener_failures = 0
        # Hears the name of every failed listener (or "tallies", "accounting"): the metrics.
        self.on_listener_failure: Callable[[str], None] = lambda _name: None
        self.totals = Totals()
        self.last_batch: BatchStats | None = None
        # The last written batch while it is counted and its listeners run, and its rows.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer-account")
        self._inflight: tuple[DataFrame, Future[None]] | None = None
        self._inflight_lock = threading.Lock()

    def submit(
        self,
        scored: DataFrame,
        batch_id: int,
        version: int,
        duration_s: float,
        phases: dict[str, float],
    ) -> None:
        """Count the written batch (its cached rows `scored`) and run its listeners on the
        accounting thread, once the previous batch's accounting is done; its rows are
        released when it is settled (or at once, if this fails)."""
        accounted = False
        try:
            # The previous batch's accounting is done before this one's starts: at most one
            # batch is in flight, and its rows are released.
            self.settle()
            work = self._worker.submit(self._account, scored, batch_id, version, duration_s, phases)
            with self._inflight_lock:
                self._inflight = (scored, work)
            accounted = True
        finally:
            if not accounted:
                scored.unpersist()

    def _account(
        self,
        scored: DataFrame,
        batch_id: int,
        version: int,
        duration_s: float,
        phases: dict[str, float],
    ) -> None:
        """Count a written batch by reason and run the listeners (on the accounting thread).

        This overlaps the next batch's trigger, planning and write instead of delaying them.
        """
        started = time.monotonic()
        complete = True
        try:
            tallied = self.tally(scored, version)
        except Exception:
            # A listener's tally column failed in Spark: count the batch by reason alone.
            complete = False
            self._listener_failed("tallies")
            log.exception("the listeners' tallies of batch %d failed; counting by reason", batch_id)
            tallied = self.tally(scored, version, listeners=False)
        reasons = by_reason(tallied)
        phases["count"] = time.monotonic() - started
        dead = {reason: n for reason, n in reasons.items() if reason is not None}
        stats = BatchStats(
            batch_id=batch_id,
            records_in=sum(reasons.values()),
            scored=reasons.get(None, 0),
            dead_lettered=dead,
            duration_s=duration_s,
            model_version=version,
            phases=phases,
            tallies=tallied,
            listener_tallies=complete,
        )
        for listener in self.listeners:
            try:
                listener.on_batch(scored, stats)
            except Exception:
                self._listener_failed(listener_name(listener))
                log.exception("batch listener %r failed on batch %d", listener, batch_id)
        phases["listeners"] = time.monotonic() - started - phases["count"]
        self.totals.add(stats)
        self.last_batch = stats
        log.info(
            "batch %d: %d in, %d scored, %s dead-lettered, %.3f s (%s), model v%d",
            batch_id,
            stats.records_in,
            stats.scored,
            stats.dead_lettered or 0,
            duration_s,
            ", ".join(f"{k} {v:.3f}" for k, v in phases.items()),
            stats.model_version,
        )

    def _listener_failed(self, name: str) -> None:
        self.listener_failures += 1
        try:
            self.on_listener_failure(name)
        except Exception:  # the metrics must not fail the batch either
            log.exception("counting a failure of %s failed", name)

    def tally(self, scored: DataFrame, version: int, listeners: bool = True) -> Tallied:
        """The counts by reason and every listener's batch tallies, in one Spark job.

        One task (coalesce(1)) reads the cached rows, and the other core stays with the next
        batch; the group-by after it is over a few hundred (tally, key) groups.
        """
        from pyspark.sql import functions as F

        projections: list[Column] = [F.col(REASON)]
        tallies: dict[str, Tally] = {REASONS_TALLY: reasons_tally()}
        for listener in self.listeners if listeners else ():
            hook = getattr(listener, "batch_tallies", None)
            if hook is None:
                continue
            try:
                more_columns, more_tallies = hook(version)
                taken = tallies.keys() & more_tallies.keys()
                if taken:
                    msg = f"tally names {sorted(taken)} are already taken"
                    raise ScorestreamError(msg)
            except Exception:
                self._listener_failed(listener_name(listener))
                log.exception("batch listener %r failed to give its tallies", listener)
                continue
            projections += more_columns
            tallies.update(more_tallies)
        return tally(scored.select(*projections).coalesce(1), tallies)

    def settle(self, timeout_s: float = 300.0) -> None:
        """Wait until the last written batch is counted and its listeners ran (totals,
        `last_batch` and metrics then include it), and release its cached rows. A failure
        of the accounting is logged and counted, never raised: the batch is on Kafka."""
        with self._inflight_lock:
            if self._inflight is None:
                return
            scored, work = self._inflight
            self._inflight = None
            try:
                work.result(timeout=timeout_s)
            except Exception:
                self._listener_failed("accounting")
                log.exception(
                    "accounting of a written batch failed: it is published, its counts and "
                    "listeners are missing"
                )
            finally:
                scored.unpersist()

    def settle_quietly(self, timeout_s: float) -> None:
        try:
            self.settle(timeout_s)
        except Exception:  # logged by settle(); stopping goes on
            log.debug("accounting failed while stopping", exc_info=True)
