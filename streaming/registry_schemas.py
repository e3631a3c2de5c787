"""Writer schemas of Confluent-framed input from a Schema Registry, fetched by id on the driver.

Each micro-batch's distinct schema ids are read from the 5-byte headers (one small Spark job
over the batch); ids not seen before are fetched from the registry once, checked against the
reader schema with Avro's own rules, and cached for the scorer's lifetime (a registered id's
schema never changes). An id the registry does not hold is asked again after a while, not per
batch, so a stream of records with a bad id does not hammer the registry; its records are
dead-lettered with a message naming the id and the registry's URL.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from scorestream.avro import SCORE_SCHEMA, read_schema
from scorestream.errors import ConfigError
from scorestream.schema_registry import SchemaRegistry, subject
from scorestream.streaming.avro_input import (
    HEADER_BYTES,
    InputFormat,
    WriterSchemas,
    compatibility_problem,
)
from scorestream.streaming.avro_input import schema_text as compact
from scorestream.streaming.scoring import OutputFormat

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# New ids looked up per batch at most: random bytes with a zero first byte carry random "ids",
# and each look-up is an HTTP round trip. Ids past the cap are dead-lettered as unknown.
MAX_NEW_IDS = 32
MISSING_RETRY_S = 30.0  # an id the registry lacked is asked again after this long


def batch_schema_ids(batch: DataFrame, limit: int) -> list[int]:
    """The distinct schema ids in the headers of a batch's Confluent-framed values."""
    from pyspark.sql import functions as F

    value = F.col("value")
    framed = (F.octet_length(value) >= HEADER_BYTES) & (F.substring(value, 1, 1) == F.lit(b"\x00"))
    schema_id = F.conv(F.hex(F.substring(value, 2, 4)), 16, 10).cast("long").alias("id")
    rows = batch.where(framed).select(schema_id).distinct().limit(limit).collect()
    return sorted(int(r["id"]) for r in rows)


class RegistryWriters:
    """The writer schemas met so far, by id, with the problems of unusable ones."""

    def __init__(self, spark: SparkSession, fmt: InputFormat) -> None:
        if fmt.registry is None:
            msg = "RegistryWriters needs an input format with a Schema Registry"
            raise ConfigError(msg)
        self.spark = spark
        self.registry = SchemaRegistry(fmt.registry)
        self.reader = compact(read_schema(fmt.reader_schema))
        self.source = f"the Schema Registry at {self.registry.url}"
        self._usable: dict[int | None, str] = {}
        self._problems: dict[int, str] = {}
        self._missing: dict[int, float] = {}  # id -> when the registry last said it has none

    def check(self) -> None:
        """Start-up: the registry answers (else StackError naming its URL)."""
        self.registry.check()

    def current(self) -> WriterSchemas:
        return WriterSchemas(dict(self._usable), dict(self._problems), self.source)

    def for_batch(self, batch: DataFrame) -> WriterSchemas:
        """Fetch the batch's new ids, then the schemas of every id met so far."""
        ids = batch_schema_ids(batch, limit=len(self._usable) + len(self._problems) + MAX_NEW_IDS)
        return self.learn(ids)

    def learn(self, ids: list[int]) -> WriterSchemas:
        now = time.monotonic()
        new = [
            i
            for i in ids
            if i not in self._usable
            and i not in self._problems
            and now - self._missing.get(i, -MISSING_RETRY_S) >= MISSING_RETRY_S
        ]
        for schema_id in new[:MAX_NEW_IDS]:
            text = self.registry.schema(schema_id)  # StackError when unreachable: batch fails
            if text is None:
                self._missing[schema_id] = now
                log.warning("schema id %d is not in %s", schema_id, self.source)
                continue
            self._missing.pop(schema_id, None)
            self._add(schema_id, text)
        return self.current()

    def _add(self, schema_id: int, text: str) -> None:
        where = f"schema id {schema_id} of {self.source}"
        try:
            writer = compact(read_schema(text))
        except ConfigError as exc:
            self._problems[schema_id] = f"{where} is not an Avro record schema: {exc}"
            return
        problem = (
            compatibility_problem(self.spark, self.reader, writer)
            if writer != self.reader
            else None
        )
        if problem:
            self._problems[schema_id] = f"{where} cannot be read with the reader schema: {problem}"
            log.error("writer %s", self._problems[schema_id])
        else:
            self._usable[schema_id] = writer


def register_score_schema(output: OutputFormat, topic: str) -> OutputFormat:
    """The output format with the real id of schemas/score.avsc, registered under
    `<topic>-value` (a no-op without a registry)."""
    if output.registry is None:
        return output
    registry = SchemaRegistry(output.registry)
    name = subject(topic)
    schema_id = registry.register(name, compact(read_schema(SCORE_SCHEMA)))
    log.info("score schema is id %d of subject %s at %s", schema_id, name, registry.url)
    return replace(output, schema_id=schema_id)
