"""Scoring as a pure DataFrame -> DataFrame function: Kafka rows in, Kafka rows (scores + DLQ) out.

The same function serves the streaming query (both trigger modes), batch scoring and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorestream.avro import SCORE_SCHEMA, read_schema
from scorestream.contract.formats import FORMATS
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError
from scorestream.models.evaluate import score_column
from scorestream.streaming.avro_input import InputFormat, WriterSchemas, decode_avro
from scorestream.streaming.validate import (
    MESSAGE,
    REASON,
    Decoded,
    ValidationSettings,
    decode_json,
    validate,
)

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column, DataFrame

# Kafka header names on score and dead-letter records.
H_PARTITION = "scorestream.source.partition"
H_OFFSET = "scorestream.source.offset"
H_TOPIC = "scorestream.source.topic"
H_REASON = "scorestream.error.reason"
H_MESSAGE = "scorestream.error.message"
H_MODEL = "scorestream.model.version"

# The moment a row was scored (see scoring_clock): the score record's `scored_at`.
SCORED_AT = "_scored_at"


OUTPUT_FORMATS = FORMATS


@dataclass(frozen=True)
class Topics:
    """Where scores and dead-letter records go."""

    output: str
    dead_letter: str


@dataclass(frozen=True)
class OutputFormat:
    """How score records are encoded: JSON, or Avro of schemas/score.avsc (Confluent-framed
    with `schema_id` for `confluent-avro`)."""

    kind: str = "json"
    schema_id: int = 1

    def __post_init__(self) -> None:
        if self.kind not in OUTPUT_FORMATS:
            msg = (
                f"unknown output format {self.kind!r}; expected one of {', '.join(OUTPUT_FORMATS)}"
            )
            raise ConfigError(msg)
        if not 0 <= self.schema_id < 2**31:
            msg = f"output schema id {self.schema_id} is outside 0..2^31-1"
            raise ConfigError(msg)


def _header(name: str, value: Column) -> Column:
    from pyspark.sql import functions as F

    return F.struct(F.lit(name).alias("key"), value.cast("string").cast("binary").alias("value"))


def _score_columns(version: int) -> tuple[Column, ...]:
    from pyspark.sql import functions as F

    return (
        F.col("*"),
        score_column().alias("score"),
        F.lit(version).alias("model_version"),
        scoring_clock().alias(SCORED_AT),
    )


def scoring_clock() -> Column:
    """The wall clock when a row is scored (milliseconds), evaluated per row.

    Not `current_timestamp()`: Spark folds that into a constant per query, so every micro-batch
    generates different code and pays a Janino compile of its whole stage (about 100 ms a
    batch, measured on 2 cores); in real-time mode it would stay at the epoch's start for
    minutes. A reflected `System.currentTimeMillis` keeps the generated code the same.
    """
    from pyspark.sql import functions as F

    millis = F.expr("reflect('java.lang.System', 'currentTimeMillis')").cast("long")
    return F.timestamp_millis(millis)


def _score_value(spec: FeatureSpec, output: OutputFormat) -> Column:
    """The score record's bytes in the output format (schemas/score.avsc for Avro)."""
    import json

    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import to_avro

    record = F.struct(
        F.col(spec.event_id).alias("event_id"),
        F.col("score").cast("double").alias("score"),
        F.col("prediction").cast("double").alias("prediction"),
        F.col("model_version").cast("int").alias("model_version"),
        F.col(spec.event_time).alias("event_time"),
        F.col(SCORED_AT).alias("scored_at"),
    )
    if output.kind == "json":
        json_text = F.to_json(record, {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"})
        return json_text.cast("binary")
    body = to_avro(record, json.dumps(read_schema(SCORE_SCHEMA)))
    if output.kind == "avro":
        return body
    header = bytes([0]) + output.schema_id.to_bytes(4, "big")
    return F.concat(F.lit(header), body)


def kafka_columns(
    spec: FeatureSpec, topics: Topics, output: OutputFormat | None = None
) -> tuple[Column, ...]:
    """The Kafka sink row (topic, key, value, headers) of a scored row: a score for good
    records, the original bytes for dead-lettered ones."""
    from pyspark.sql import functions as F

    good = F.col(REASON).isNull()
    score_value = _score_value(spec, output or OutputFormat())
    score_headers = F.array(
        _header(H_PARTITION, F.col("_src_partition")),
        _header(H_OFFSET, F.col("_src_offset")),
        _header(H_MODEL, F.col("model_version")),
    )
    dlq_headers = F.array(
        _header(H_REASON, F.col(REASON)),
        _header(H_MESSAGE, F.col(MESSAGE)),
        _header(H_TOPIC, F.col("_src_topic")),
        _header(H_PARTITION, F.col("_src_partition")),
        _header(H_OFFSET, F.col("_src_offset")),
    )
    return (
        F.when(good, F.lit(topics.output)).otherwise(F.lit(topics.dead_letter)).alias("topic"),
        F.when(good, F.col(spec.event_id).cast("binary")).otherwise(F.col("_src_key")).alias("key"),
        F.when(good, score_value).otherwise(F.col("_src_value")).alias("value"),
        F.when(good, score_headers).otherwise(dlq_headers).alias("headers"),
    )


def decoder(
    template: DataFrame,
    spec: FeatureSpec,
    fmt: InputFormat | None = None,
    writers: WriterSchemas | None = None,
) -> Decoded:
    """How Kafka rows in the input format (JSON unless told otherwise) are decoded; `template`
    is any DataFrame of Kafka rows (Avro reads its decoded type from it)."""
    if fmt is None or fmt.kind == "json":
        return decode_json(spec)
    if writers is None:
        msg = "Avro input needs its writer schemas (see streaming.avro_input.load_writer_schemas)"
        raise ConfigError(msg)
    return decode_avro(template, spec, fmt, writers)


class ScoringPlan:
    """Kafka rows -> scored rows -> Kafka sink rows, with every expression built once.

    Building the decode and validation expressions takes hundreds of calls into the JVM, and
    PySpark's `PipelineModel.transform` copies every stage's params to the JVM on each call; a
    micro-batch scorer would pay both per batch. A plan serves one model version (and one set
    of Avro writer schemas): `scored()` is then a few selects and one JVM call.
    """

    def __init__(
        self,
        template: DataFrame,
        model: PipelineModel,
        version: int,
        spec: FeatureSpec,
        validation: ValidationSettings,
        fmt: InputFormat | None = None,
        writers: WriterSchemas | None = None,
    ) -> None:
        self.spec = spec
        self.decoded = validate(decoder(template, spec, fmt, writers), spec, validation)
        self._java_model = model._to_java()  # params copied once, not per batch
        self._score = _score_columns(version)
        self._sink: dict[tuple[Topics, OutputFormat], tuple[Column, ...]] = {}

    def validated(self, raw: DataFrame) -> DataFrame:
        """Typed feature columns, `_reason` and `_message` (null for good records)."""
        return self.decoded.apply(raw)

    def scored(self, raw: DataFrame) -> DataFrame:
        """Kafka source rows -> typed features, `_reason`/`_message`, `score`, `prediction`,
        `model_version`, `_scored_at`."""
        from pyspark.sql import DataFrame as SparkFrame

        validated = self.validated(raw)
        transformed = SparkFrame(
            self._java_model.transform(validated._jdf),
            validated.sparkSession,
        )
        return transformed.select(*self._score)

    def kafka(self, scored: DataFrame, topics: Topics, output: OutputFormat) -> DataFrame:
        """Kafka sink rows of scored rows (see kafka_columns)."""
        key = (topics, output)
        if key not in self._sink:
            self._sink[key] = kafka_columns(self.spec, topics, output)
        return scored.select(*self._sink[key])
