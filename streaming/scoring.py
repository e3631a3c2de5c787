"""Scoring as a pure DataFrame -> DataFrame function: Kafka rows in, Kafka rows (scores + DLQ) out.

The same function serves the streaming query (both trigger modes), batch scoring and benchmarks.

One module (about 310 lines) because the output limits (`fit_columns`, `fit_output`) size
exactly the headers and value that `kafka_columns` writes: the byte accounting stays next to
the record it accounts for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorestream.avro import SCORE_SCHEMA, read_schema
from scorestream.contract.formats import FORMATS
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError
from scorestream.models.scoring import Score, score_record_columns, scorer_of
from scorestream.schema_registry import SchemaRegistrySettings
from scorestream.streaming.avro_input import InputFormat, WriterSchemas, decode_avro
from scorestream.streaming.validate import (
    MESSAGE,
    REASON,
    TOO_LARGE,
    Decoded,
    ValidationSettings,
    decode_json,
    validate,
)

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column, DataFrame

    from scorestream.models.compile import CompiledModel

# Kafka header names on score and dead-letter records.
H_PARTITION = "scorestream.source.partition"
H_OFFSET = "scorestream.source.offset"
H_TOPIC = "scorestream.source.topic"
H_REASON = "scorestream.error.reason"
H_MESSAGE = "scorestream.error.message"
H_MODEL = "scorestream.model.version"
# On a dead letter cut to fit its topic: "true", and the original value's and key's lengths.
H_TRUNCATED = "scorestream.truncated"
H_ORIGINAL_BYTES = "scorestream.original.bytes"
H_ORIGINAL_KEY_BYTES = "scorestream.original.key.bytes"

# The broker's default max.message.bytes (what a topic takes unless configured otherwise).
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
# Kafka's upper bound of one record in a batch of its own, besides key, value and headers:
# the batch header (61 bytes) and the record's length, attributes, deltas and length varints
# (at most 36); each header adds at most 10 bytes of varints. The producer refuses a record
# whose bound exceeds max.request.size, the broker a batch larger than max.message.bytes.
RECORD_OVERHEAD = 97
HEADER_OVERHEAD = 10
# A score record's headers at most: their names, a partition (10 digits), an offset (19) and a
# model version (11 with a sign).
SCORE_HEADERS_MAX = len(H_PARTITION) + len(H_OFFSET) + len(H_MODEL) + 3 * HEADER_OVERHEAD + 40
TRUNCATION_HEADERS_MAX = (
    len(H_TRUNCATED) + 4 + len(H_ORIGINAL_BYTES) + len(H_ORIGINAL_KEY_BYTES) + 20
) + 3 * HEADER_OVERHEAD

# The score record's bytes in the output format, null for dead-lettered rows (see fit_output).
SCORE_VALUE = "_score_value"


@dataclass(frozen=True)
class Topics:
    """Where scores and dead-letter records go."""

    output: str
    dead_letter: str
    # The largest record each takes (its max.message.bytes, or the producer's
    # max.request.size when that is smaller): read by the scorer's preflight.
    output_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    dead_letter_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class OutputFormat:
    """How score records are encoded: JSON, or Avro of schemas/score.avsc (Confluent-framed
    with `schema_id` for `confluent-avro`, the id the `registry` gives it when there is one)."""

    kind: str = "json"
    schema_id: int = 1
    registry: SchemaRegistrySettings | None = None

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            msg = f"unknown output format {self.kind!r}; expected one of {', '.join(FORMATS)}"
            raise ConfigError(msg)
        if not 0 <= self.schema_id < 2**31:
            msg = f"output schema id {self.schema_id} is outside 0..2^31-1"
            raise ConfigError(msg)
        if self.registry is not None and self.kind != "confluent-avro":
            msg = f"a Schema Registry serves the confluent-avro output format, not {self.kind!r}"
            raise ConfigError(msg)


def _header(name: str, value: Column) -> Column:
    from pyspark.sql import functions as F

    return F.struct(F.lit(name).alias("key"), value.cast("string").cast("binary").alias("value"))


def _score_value(spec: FeatureSpec, output: OutputFormat) -> Column:
    """The score record's bytes in the output format (schemas/score.avsc for Avro)."""
    import json

    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import to_avro

    record = F.struct(*score_record_columns(spec))
    if output.kind == "json":
        json_text = F.to_json(record, {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"})
        return json_text.cast("binary")
    body = to_avro(record, json.dumps(read_schema(SCORE_SCHEMA)))
    if output.kind == "avro":
        return body
    header = bytes([0]) + output.schema_id.to_bytes(4, "big")
    return F.concat(F.lit(header), body)


def _octets(value: Column) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(F.octet_length(value), F.lit(0))


def _headers_bytes(headers: Column) -> Column:
    from pyspark.sql import functions as F

    return F.aggregate(
        headers,
        F.lit(0),
        lambda acc, h: acc + F.lit(HEADER_OVERHEAD) + _octets(h["key"]) + _octets(h["value"]),
    )


def fit_columns(
    spec: FeatureSpec, topics: Topics, output: OutputFormat
) -> tuple[Column, dict[str, Column]]:
    """What fit_output adds (the score record's bytes) and what it then replaces, by name."""
    from pyspark.sql import functions as F

    good = F.col(REASON).isNull()
    value = F.when(good, _score_value(spec, output)).alias(SCORE_VALUE)
    limit = topics.output_max_bytes
    size = (
        F.lit(RECORD_OVERHEAD + SCORE_HEADERS_MAX)
        + _octets(F.col(spec.event_id).cast("binary"))
        + _octets(F.col(SCORE_VALUE))
    )
    too_big = good & (size > F.lit(limit))
    message = F.concat(
        F.lit("score record is "),
        size.cast("string"),
        F.lit(f" bytes, larger than the output topic '{topics.output}' takes ({limit})"),
    )
    return value, {
        REASON: F.when(too_big, F.lit(TOO_LARGE)).otherwise(F.col(REASON)).alias(REASON),
        MESSAGE: F.when(too_big, message).otherwise(F.col(MESSAGE)).alias(MESSAGE),
        SCORE_VALUE: F.when(~too_big, F.col(SCORE_VALUE)).alias(SCORE_VALUE),
    }


def fit_output(
    scored: DataFrame,
    spec: FeatureSpec,
    topics: Topics,
    output: OutputFormat,
    columns: tuple[Column, dict[str, Column]] | None = None,
) -> DataFrame:
    """Scored rows plus their score record's bytes (`_score_value`); a score record larger than
    the output topic takes becomes a TOO_LARGE dead letter (its `_reason` and `_message` set),
    so the sink is never handed a record the broker refuses. `columns`: fit_columns' result,
    when the caller keeps it."""
    from pyspark.sql import functions as F

    value, replaced = columns or fit_columns(spec, topics, output)
    with_value = scored.select(F.col("*"), value)
    return with_value.select(*[replaced.get(c, F.col(f"`{c}`")) for c in with_value.columns])


def kafka_columns(
    spec: FeatureSpec, topics: Topics, version: int | None = None
) -> tuple[Column, ...]:
    """The Kafka sink row (topic, key, value, headers) of a fitted row (see fit_output): the
    score for good records, the original bytes for dead-lettered ones, cut to what the
    dead-letter topic takes (with headers saying so and the original lengths). `version`: the
    model version every row was scored with, when it is one (its header is then a constant,
    not a per-row conversion)."""
    from pyspark.sql import functions as F

    good = F.col(REASON).isNull()
    model = F.col("model_version") if version is None else F.lit(str(version))
    score_headers = F.array(
        _header(H_PARTITION, F.col("_src_partition")),
        _header(H_OFFSET, F.col("_src_offset")),
        _header(H_MODEL, model),
    )
    dlq_headers = F.array(
        _header(H_REASON, F.col(REASON)),
        _header(H_MESSAGE, F.col(MESSAGE)),
        _header(H_TOPIC, F.col("_src_topic")),
        _header(H_PARTITION, F.col("_src_partition")),
        _header(H_OFFSET, F.col("_src_offset")),
    )
    key, value = F.col("_src_key"), F.col("_src_value")
    limit = topics.dead_letter_max_bytes
    fixed = F.lit(RECORD_OVERHEAD) + _headers_bytes(dlq_headers)
    fits = fixed + _octets(key) + _octets(value) <= F.lit(limit)
    # Cut: the value keeps what the key and headers leave; a key too large for the topic on
    # its own is cut as well and the value left empty.
    room = F.lit(limit - TRUNCATION_HEADERS_MAX) - fixed
    value_room = F.greatest(room - _octets(key), F.lit(0))
    cut_value = F.substring(value, F.lit(1), value_room)
    cut_key = F.when(_octets(key) > room, F.substring(key, F.lit(1), F.greatest(room, F.lit(0))))
    cut_headers = F.concat(
        dlq_headers,
        F.array(
            _header(H_TRUNCATED, F.lit("true")),
            _header(H_ORIGINAL_BYTES, _octets(value)),
            _header(H_ORIGINAL_KEY_BYTES, _octets(key)),
        ),
    )
    return (
        F.when(good, F.lit(topics.output)).otherwise(F.lit(topics.dead_letter)).alias("topic"),
        F.when(good, F.col(spec.event_id).cast("binary"))
        .when(fits, key)
        .otherwise(F.coalesce(cut_key, key))
        .alias("key"),
        F.when(good, F.col(SCORE_VALUE))
        .when(fits, value)
        .otherwise(F.when(value.isNotNull(), cut_value))
        .alias("value"),
        F.when(good, score_headers).when(fits, dlq_headers).otherwise(cut_headers).alias("headers"),
    )


def decoder(
    template: DataFrame,
    spec: FeatureSpec,
    fmt: InputFormat | None = None,
    writers: WriterSchemas | None = None,
    validation: ValidationSettings | None = None,
) -> Decoded:
    """How Kafka rows in the input format (JSON unless told otherwise) are decoded; `template`
    is any DataFrame of Kafka rows (Avro reads its decoded type from it)."""
    if fmt is None or fmt.kind == "json":
        return decode_json(spec, validation)
    if writers is None:
        msg = "Avro input needs its writer schemas (see streaming.avro_input.load_writer_schemas)"
        raise ConfigError(msg)
    return decode_avro(template, spec, fmt, writers, validation)


class ScoringPlan:
    """Kafka rows -> scored rows -> Kafka sink rows, with every expression built once.

    Building the decode and validation expressions takes hundreds of calls into the JVM, and
    PySpark's `PipelineModel.transform` copies every stage's params to the JVM on each call; a
    micro-batch scorer would pay both per batch. A plan serves one model version (and one set
    of Avro writer schemas): `scored()` is then a few selects and one JVM call.

    With `compiled` (see models.parity), the score and prediction are plain column
    expressions instead of the PipelineModel's stages: decode, validate, score and encode are
    then one projection.
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
        compiled: CompiledModel | None = None,
    ) -> None:
        self.spec = spec
        self.version = version
        self.decoded = validate(decoder(template, spec, fmt, writers, validation), spec, validation)
        self._score: Score = scorer_of(model, version, compiled)  # model params copied once
        self._sink: dict[Topics, tuple[Column, ...]] = {}
        self._fit: dict[tuple[Topics, OutputFormat], tuple[Column, dict[str, Column]]] = {}

    def validated(self, raw: DataFrame) -> DataFrame:
        """Typed feature columns, `_reason` and `_message` (null for good records)."""
        return self.decoded.apply(raw)

    def scored(self, raw: DataFrame) -> DataFrame:
        """Kafka source rows -> typed features, `_reason`/`_message`, then the score record's
        fields (`score`, `prediction`, `model_version`, `scored_at`; see models.scoring)."""
        return self._score(self.validated(raw))

    def fit(self, scored: DataFrame, topics: Topics, output: OutputFormat) -> DataFrame:
        """Scored rows with their score records, sized for the topics (see fit_output)."""
        key = (topics, output)
        if key not in self._fit:
            self._fit[key] = fit_columns(self.spec, topics, output)
        return fit_output(scored, self.spec, topics, output, self._fit[key])

    def kafka(self, scored: DataFrame, topics: Topics, output: OutputFormat) -> DataFrame:
        """Kafka sink rows of scored rows (fitted here unless they are; see kafka_columns)."""
        if SCORE_VALUE not in scored.columns:
            scored = self.fit(scored, topics, output)
        return scored.select(*self.sink_columns(topics))

    def sink_columns(self, topics: Topics) -> tuple[Column, ...]:
        """The Kafka sink row's columns of a fitted row (kept per topics)."""
        if topics not in self._sink:
            self._sink[topics] = kafka_columns(self.spec, topics, self.version)
        return self._sink[topics]
