"""The scorer's last line of defence: find the records that make a micro-batch fail.

A batch that fails for a reason in its data or the model (an exception Spark or a model stage
raises on some rows) would fail again on every replay. Instead, the batch's Kafka rows are
read once into memory and bisected by partition and offset range; each half is scored on its
own into Spark's `noop` sink (every column evaluated, nothing written), until the single
records that fail are known. They are dead-lettered as PROCESSING_ERROR and the rest is
published. A failure of the broker, the network or authorisation is not the data's: it is
retried with a bounded backoff and then stops the query with its message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorestream.contract.reasons import PROCESSING_ERROR
from scorestream.errors import ScorestreamError
from scorestream.streaming.validate import MESSAGE, REASON, SOURCE_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

# Text in a failure (its message, Java stack or cause) that says the fault is not the data's.
TRANSIENT_MARKERS = (
    "org.apache.kafka.common.errors.TimeoutException",
    "org.apache.kafka.common.errors.NetworkException",
    "org.apache.kafka.common.errors.DisconnectException",
    "org.apache.kafka.common.errors.NotLeaderOrFollowerException",
    "org.apache.kafka.common.errors.NotEnoughReplicas",
    "org.apache.kafka.common.errors.LeaderNotAvailableException",
    "org.apache.kafka.common.errors.BrokerNotAvailableException",
    "org.apache.kafka.common.errors.AuthenticationException",
    "org.apache.kafka.common.errors.SaslAuthenticationException",
    "AuthorizationException",
    "java.net.ConnectException",
    "java.net.SocketException",
    "java.io.IOException",
    "java.lang.OutOfMemoryError",
    "Py4JNetworkError",
    "Connection refused",
    "transaction of batch",  # streaming.exactly_once: the transactional producer failed
)
# At most this many records of one batch are isolated: more means the fault is not in a few
# records (a model that fails on everything), and the batch fails instead.
MAX_CULPRITS = 64
MESSAGE_CHARS = 300

Coordinate = tuple[int, int]  # (partition, offset)


def failure_text(exc: BaseException) -> str:
    """Everything a pyspark or py4j exception says: message, Java stack trace and cause."""
    parts = [str(exc), str(getattr(exc, "_stackTrace", "") or ""), str(exc.__cause__ or "")]
    java = getattr(exc, "java_exception", None)
    if java is not None:
        parts.append(str(java))
    return "\n".join(parts)


def is_transient(exc: BaseException) -> bool:
    """True for a failure of the broker, network, authorisation or JVM, not of the data."""
    text = failure_text(exc)
    return any(marker in text for marker in TRANSIENT_MARKERS)


_TASK_FAILURE = re.compile(r"most recent failure: Lost task [^)]*\)(?: \([^)]*\))?: ([^\n]+)")
_JAVA_EXCEPTION = re.compile(r"((?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\b[^\n]*)")


def summary(exc: BaseException) -> str:
    """Exception class and first message line of the root failure (for a dead letter)."""
    text = failure_text(exc)
    found = _TASK_FAILURE.search(text) or _JAVA_EXCEPTION.search(text)
    if found is not None:
        line = found.group(1).strip()
    else:
        first = str(exc).strip().splitlines()
        line = f"{type(exc).__name__}: {first[0] if first else ''}"
    return line[:MESSAGE_CHARS]


@dataclass
class Isolation:
    """Culprits found so far in one batch, by (partition, offset), with their failure."""

    culprits: dict[Coordinate, str]

    def condition(self) -> Column:
        """True on a culprit's Kafka row."""
        from pyspark.sql import functions as F

        keys = [f"{p}:{o}" for p, o in self.culprits]
        return F.concat_ws(":", F.col("partition"), F.col("offset")).isin(keys)


def bisect(
    raw: DataFrame,
    fails: Callable[[DataFrame], BaseException | None],
    known: Mapping[Coordinate, str],
) -> dict[Coordinate, str]:
    """The records of `raw` (Kafka source rows, cached by the caller) on which `fails` returns
    an exception, besides those `known`: ranges of offsets per partition are halved until a
    failing range is one record. A transient failure on the way is raised as it is.

    When the left half of a failing range passes, the right half fails for sure (failures
    from the data are deterministic) and is split without being probed; a single record is
    always probed, so its message is its own failure.
    """
    from pyspark.sql import functions as F

    done = Isolation(dict(known)).condition() if known else F.lit(False)
    todo = raw.filter(~done)
    ranges = todo.groupBy("partition").agg(F.min("offset"), F.max("offset")).collect()
    found: dict[Coordinate, str] = {}
    probes = 0

    def probe(partition: int, lo: int, hi: int) -> BaseException | None:
        nonlocal probes
        probes += 1
        part = todo.filter(
            (F.col("partition") == F.lit(partition)) & F.col("offset").between(lo, hi)
        )
        error = fails(part)
        if error is not None and is_transient(error):
            raise error
        return error

    def search(partition: int, lo: int, hi: int, failing: bool) -> bool:
        """Find the culprits in [lo, hi] of a partition; True when there were any."""
        if lo == hi:
            error = probe(partition, lo, hi)
            if error is None:
                return False
            found[(partition, lo)] = summary(error)
            if len(found) + len(known) > MAX_CULPRITS:
                msg = (
                    f"more than {MAX_CULPRITS} records of the batch fail ({summary(error)}): "
                    "the fault is not in a few records"
                )
                raise ScorestreamError(msg) from error
            return True
        if not failing and probe(partition, lo, hi) is None:
            return False
        mid = (lo + hi) // 2
        left = search(partition, lo, mid, False)
        search(partition, mid + 1, hi, not left)
        return True

    for row in ranges:
        search(int(row[0]), int(row[1]), int(row[2]), False)
    log.info("isolation: %d probe(s), %d failing record(s)", probes, len(found))
    return found


def dead_letters_like(template: DataFrame, raw: DataFrame, isolation: Isolation) -> DataFrame:
    """The culprits' Kafka rows as scored rows of `template`'s columns: source columns kept,
    PROCESSING_ERROR with the failure as message, everything else null."""
    from pyspark.sql import functions as F

    renamed = {dst: src for src, dst in SOURCE_COLUMNS.items()}
    pairs = [(F.lit(f"{p}:{o}"), F.lit(text)) for (p, o), text in isolation.culprits.items()]
    messages = F.create_map(*[c for pair in pairs for c in pair])
    where = F.concat_ws(":", F.col("partition"), F.col("offset"))
    columns = []
    for field in template.schema.fields:
        name = field.name
        if name in renamed:
            columns.append(F.col(renamed[name]).alias(name))
        elif name == REASON:
            columns.append(F.lit(PROCESSING_ERROR).alias(name))
        elif name == MESSAGE:
            columns.append(
                F.concat(F.lit("processing failed: "), F.element_at(messages, where)).alias(name)
            )
        else:
            columns.append(F.lit(None).cast(field.dataType).alias(name))
    return raw.filter(isolation.condition()).select(*columns)
