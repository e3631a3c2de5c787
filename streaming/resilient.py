"""A batch write that survives its records: the ones that make it fail are isolated and
dead-lettered, a failure not in the data is retried with backoff, then stops the query."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from scorestream.errors import ScorestreamError
from scorestream.streaming.isolate import Coordinate, Isolation, is_transient, summary

log = logging.getLogger(__name__)

T = TypeVar("T")


class StopRequested(ScorestreamError):
    """Raised inside a batch that starts after a stop was asked for."""


class ResilientWrite:
    """Writes batches, isolating failing records and retrying other failures; counts both."""

    def __init__(self, retries: int, backoff_s: float, stopping: threading.Event) -> None:
        # A batch failing for a reason not in its data (broker, network, authorisation) is
        # retried `retries` times, after 1, 2, 4... times `backoff_s` (at most 30 s).
        self.retries = retries
        self.backoff_s = backoff_s
        self._stopping = stopping
        self.isolated = 0  # records dead-lettered as PROCESSING_ERROR since the start
        self.retried = 0  # batch attempts retried after a failure not in the data

    def run(
        self,
        batch_id: int,
        write: Callable[[Isolation], T],
        isolate: Callable[[dict[Coordinate, str]], dict[Coordinate, str]],
    ) -> T:
        """`write(isolation)` the batch; when that fails for a reason in its records,
        `isolate(known)` finds them (dead letters PROCESSING_ERROR) and the batch is written
        again; any other failure is retried with backoff, at most `retries` times, then
        raised as ScorestreamError (the query stops)."""
        isolation = Isolation({})
        attempts = 0
        while True:
            try:
                return write(isolation)
            except StopRequested:
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    raise
                failure: BaseException = exc
                if not is_transient(exc):
                    try:
                        found = isolate(isolation.culprits)
                    except Exception as probe_exc:
                        if not is_transient(probe_exc):
                            raise
                        failure, found = probe_exc, {}
                    if found:
                        isolation.culprits.update(found)
                        self.isolated += len(found)
                        log.warning(
                            "batch %d: %d record(s) make it fail, dead-lettered as "
                            "PROCESSING_ERROR: %s",
                            batch_id,
                            len(found),
                            "; ".join(f"{p}:{o} {why}" for (p, o), why in found.items()),
                        )
                        continue
                    # Not reproduced on any part of the batch: not the data's fault after all.
                attempts += 1
                if attempts > self.retries:
                    msg = (
                        f"batch {batch_id} failed {attempts} times for a reason that is not in "
                        f"its records, stopping: {summary(failure)}"
                    )
                    raise ScorestreamError(msg) from failure
                self.retried += 1
                delay = min(self.backoff_s * 2 ** (attempts - 1), 30.0)
                log.warning(
                    "batch %d failed (%s); retry %d of %d in %.1f s",
                    batch_id,
                    summary(failure),
                    attempts,
                    self.retries,
                    delay,
                )
                if self._stopping.wait(delay):
                    msg = f"scorer stopping; batch {batch_id} left for the next run"
                    raise StopRequested(msg) from failure
