"""Workarounds for Spark bugs the scorer meets, each with the bug it answers and when it goes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

MAX_RESTARTS = 5


def is_spark_55271(exc: object) -> bool:
    """The NullPointerException of Spark 4.1.1's Kafka source metrics after a replayed batch."""
    if exc is None:
        return False
    # pyspark's StreamingQueryException keeps the Java stack trace apart from its message.
    text = f"{exc} {getattr(exc, '_stackTrace', '')} {getattr(exc, '_cause', '')}"
    return "KafkaMicroBatchStream" in text and (
        "NullPointerException" in text or "Option.get()" in text
    )


class Spark55271Watchdog:
    """Restart the query after Spark 4.1.1's Kafka-source bug SPARK-55271, nothing else.

    After a crash, the batch left uncommitted is replayed on restart; Spark then reports
    its progress with Kafka offsets it never fetched and fails with a NullPointerException
    in KafkaMicroBatchStream.metrics, after the batch was written and committed. Starting
    the query again continues from the next batch. Any other failure is left to the caller
    (the scorer's raise_if_failed).
    """

    def __init__(
        self,
        current: Callable[[], StreamingQuery | None],
        restart: Callable[[], None],
        stopping: threading.Event,
    ) -> None:
        self._current = current  # the query now running
        self._restart = restart  # starts the query again (the next `current()`)
        self._stopping = stopping
        self.restarts = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="scorer-watchdog", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            query = self._current()
            if query is None:
                return
            try:
                if query.awaitTermination(1):
                    if not is_spark_55271(query.exception()):
                        return
                else:
                    continue
            except Exception as exc:
                if not is_spark_55271(exc):
                    return
            if self._stopping.is_set() or self.restarts >= MAX_RESTARTS:
                return
            self.restarts += 1
            log.warning(
                "the query hit Spark bug SPARK-55271 after replaying a batch; restarting it "
                "(%d of at most %d)",
                self.restarts,
                MAX_RESTARTS,
            )
            self._restart()
