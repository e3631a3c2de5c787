"""Avro input for the scorer: spark-avro `from_avro`, plain or Confluent-framed, with evolution.

The reader schema (default schemas/event.avsc) fixes the decoded columns; each writer schema is
resolved against it with Avro's own rules (a field the writer lacks gets the reader's default, a
field the reader lacks is skipped). Plain Avro carries no schema id, so it is read with one
writer schema (`--writer-schema`). Confluent-framed records name their writer schema's id; it is
looked up in a local directory of `<id>.avsc` files, re-read every micro-batch so a new schema
version is picked up without a restart, or in a Schema Registry (streaming/registry_schemas.py).
Everything is a JVM expression (no Python UDF).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorestream.avro import EVENT_SCHEMA, read_schema, schemas_in
from scorestream.contract.formats import FORMATS
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError
from scorestream.schema_registry import SchemaRegistrySettings
from scorestream.streaming.validate import (
    SOURCE_COLUMNS,
    Decoded,
    Raw,
    ValidationSettings,
    decoded_fields,
    source_columns,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

HEADER_BYTES = 5


@dataclass(frozen=True)
class InputFormat:
    """How the input topic's values are encoded."""

    kind: str = "json"  # json | avro | confluent-avro
    reader_schema: Path = EVENT_SCHEMA
    writer_schema: Path | None = None  # default: the reader schema
    schema_dir: Path | None = None  # confluent-avro: `<id>.avsc` files
    registry: SchemaRegistrySettings | None = None  # confluent-avro: writer schemas by id

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            msg = f"unknown input format {self.kind!r}; expected one of {', '.join(FORMATS)}"
            raise ConfigError(msg)
        if self.registry is not None and self.kind != "confluent-avro":
            msg = f"a Schema Registry serves the confluent-avro input format, not {self.kind!r}"
            raise ConfigError(msg)
        if self.registry is not None and self.schema_dir is not None:
            msg = (
                f"writer schemas come from the schema directory {self.schema_dir} or from the "
                f"Schema Registry at {self.registry.shown_url}, not both"
            )
            raise ConfigError(msg)

    def describe(self) -> str:
        if self.kind == "json":
            return "json"
        if self.kind == "avro":
            return f"avro (writer schema {self.writer_schema or self.reader_schema})"
        if self.registry is not None:
            return f"confluent-avro (writer schemas by id from {self.registry.shown_url})"
        where = self.schema_dir or self.writer_schema or self.reader_schema
        return f"confluent-avro (writer schemas by id from {where})"


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"))


def _nullable(field: dict[str, Any]) -> bool:
    kind = field["type"]
    return kind == "null" or (isinstance(kind, list) and "null" in kind)


def compatibility_problem(spark: SparkSession, reader: str, writer: str) -> str | None:
    """Avro's own reader/writer compatibility check (in the JVM); None when compatible."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    avro = jvm.org.apache.avro
    try:
        reader_schema = avro.Schema.Parser().parse(reader)
        writer_schema = avro.Schema.Parser().parse(writer)
    except Exception as exc:
        return f"not a valid Avro schema: {str(exc).splitlines()[0][:200]}"
    result = avro.SchemaCompatibility.checkReaderWriterCompatibility(reader_schema, writer_schema)
    if str(result.getType()) == "COMPATIBLE":
        return None
    return str(result.getDescription()).splitlines()[0][:300]


def limit_decoder_allocations(spark: SparkSession, max_bytes: int) -> None:
    """Cap the lengths Avro's Java decoder believes, so random bytes cannot exhaust the heap.

    A corrupt length prefix (e.g. 1.9 GB for a string) otherwise makes the decoder allocate it
    before noticing the input is short, which kills the JVM. Nothing in a record can be longer
    than the record, so the record size limit is the cap. This sets the JVM's system properties
    (in local mode the driver is the executor); on a cluster pass the same `-D` options in
    `spark.executor.extraJavaOptions` (see docs/streaming.md).
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    for kind in ("string", "bytes", "collectionItems"):
        jvm.java.lang.System.setProperty(f"org.apache.avro.limits.{kind}.maxLength", str(max_bytes))
    # The limits are read once when the class loads; re-read them in case it already has.
    cls = jvm.java.lang.Class.forName("org.apache.avro.SystemLimitException")
    gateway = spark.sparkContext._gateway
    assert gateway is not None
    method = cls.getDeclaredMethod("resetLimits", gateway.new_array(jvm.java.lang.Class, 0))
    method.setAccessible(True)
    method.invoke(None, gateway.new_array(jvm.java.lang.Object, 0))


def prepare_decoding(
    spark: SparkSession, fmt: InputFormat, spec: FeatureSpec, max_record_bytes: int
) -> None:
    """Start-up of Avro input, the same in both trigger modes: the reader schema must fit the
    model, and the decoder's allocations are capped at the record size limit. JSON: nothing."""
    if fmt.kind == "json":
        return
    check_reader_schema(read_schema(fmt.reader_schema), spec, fmt.reader_schema)
    limit_decoder_allocations(spark, max_record_bytes)


@dataclass(frozen=True)
class WriterSchemas:
    """The writer schemas a batch can meet, by Confluent id (None: plain Avro's single one)."""

    by_id: dict[int | None, str]
    problems: dict[int, str]  # ids whose schema is unusable, and why
    source: str = ""  # where ids come from, for the message of an unknown id

    def key(self) -> tuple[object, ...]:
        """Equal for equal schemas: a scoring plan is rebuilt only when this changes."""
        ids = tuple(sorted((-1 if i is None else i, text) for i, text in self.by_id.items()))
        return ids, tuple(sorted(self.problems.items()))


def load_writer_schemas(spark: SparkSession, fmt: InputFormat) -> WriterSchemas:
    """Read and check the writer schemas against `fmt.reader_schema` (the Confluent directory
    is re-read on each call)."""
    reader = schema_text(read_schema(fmt.reader_schema))
    single = schema_text(read_schema(fmt.writer_schema)) if fmt.writer_schema else reader
    if fmt.kind == "avro" or fmt.schema_dir is None:
        problem = compatibility_problem(spark, reader, single) if single != reader else None
        if problem:
            msg = (
                f"writer schema {fmt.writer_schema} cannot be read with reader schema "
                f"{fmt.reader_schema}: {problem}"
            )
            raise ConfigError(msg)
        return WriterSchemas({None: single}, {})
    by_id: dict[int | None, str] = {}
    problems: dict[int, str] = {}
    for schema_id, path in schemas_in(fmt.schema_dir).items():
        try:
            text = schema_text(read_schema(path))
        except ConfigError as exc:
            problems[schema_id] = str(exc)
            continue
        problem = compatibility_problem(spark, reader, text) if text != reader else None
        if problem:
            problems[schema_id] = f"{path} cannot be read with the reader schema: {problem}"
        else:
            by_id[schema_id] = text
    known = sorted(k for k in by_id if k is not None)
    return WriterSchemas(by_id, problems, f"{fmt.schema_dir} (known: {known})")


def check_reader_schema(reader: dict[str, Any], spec: FeatureSpec, path: Path) -> None:
    """The reader schema must declare every field the model reads."""
    declared = {f["name"] for f in reader.get("fields", [])}
    needed = [spec.event_id, spec.event_time, *spec.feature_names]
    missing = [n for n in needed if n not in declared]
    if missing:
        msg = (
            f"reader schema {path} lacks fields {missing} that the model reads "
            f"(declared: {sorted(declared)})"
        )
        raise ConfigError(msg)


def decode_avro(
    template: DataFrame,
    spec: FeatureSpec,
    fmt: InputFormat,
    writers: WriterSchemas,
    settings: ValidationSettings | None = None,
) -> Decoded:
    """Kafka rows with Avro values -> typed feature columns plus their checks.

    `template` is any DataFrame of Kafka rows; only the decoded struct's type is read from it.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    reader_schema = read_schema(fmt.reader_schema)
    check_reader_schema(reader_schema, spec, fmt.reader_schema)
    reader = schema_text(reader_schema)
    value = F.col("_src_value")

    def decode(body: Column, writer: str) -> Column:
        options = {"mode": "PERMISSIVE"}
        if writer != reader:
            options["avroSchema"] = reader
        return from_avro(body, writer, options)

    if fmt.kind == "avro":
        avro = decode(value, writers.by_id[None])
        problem = F.lit("value is not an Avro record of the writer schema: ")
    else:
        framed = (F.octet_length(value) >= HEADER_BYTES) & (
            F.substring(value, 1, 1) == F.lit(b"\x00")
        )
        schema_id = F.conv(F.hex(F.substring(value, 2, 4)), 16, 10).cast("long")
        body = F.expr(f"substring(_src_value, {HEADER_BYTES + 1})")
        if None in writers.by_id:  # no schema directory: every id is read with one schema
            avro = F.when(framed, decode(body, writers.by_id[None]))
        else:
            # A never-true first branch, so the chain has one shape for any number of ids.
            avro = F.when(F.lit(False), decode(body, reader))
            for known, writer in sorted(writers.by_id.items(), key=lambda kv: kv[0] or 0):
                avro = avro.when(framed & (schema_id == F.lit(known)), decode(body, writer))
        problem = _confluent_problem(framed, schema_id, writers)
    steps = (
        tuple(source_columns()),
        (*[F.col(c) for c in SOURCE_COLUMNS.values()], avro.alias("_avro")),
    )
    fields = {f["name"]: f for f in reader_schema["fields"]}
    struct = template.select(*steps[0]).select(*steps[1]).schema["_avro"].dataType
    needed = [spec.event_id, spec.event_time, *spec.feature_names]
    raw_values: Raw = {n: (F.col(f"_avro.{n}"), struct[n].dataType) for n in needed}  # type: ignore[index]
    # PERMISSIVE from_avro yields a row of nulls for bytes it cannot read: a field the schema
    # says can never be null being null is how a failed decode shows.
    required = [n for n, f in fields.items() if not _nullable(f)] or list(fields)
    failed = F.col("_avro").isNull()
    for name in required:
        failed = failed | F.col(f"_avro.{name}").isNull()
    message = F.concat(problem, F.substring(F.hex(value), 1, 64))
    return decoded_fields(steps, spec, raw_values, failed, message, settings)


def _confluent_problem(framed: Column, schema_id: Column, writers: WriterSchemas) -> Column:
    from pyspark.sql import functions as F

    problem = F.when(
        ~framed,
        F.lit("value is not in the Confluent wire format (magic byte 0, 4-byte schema id): "),
    )
    for bad, why in sorted(writers.problems.items()):
        problem = problem.when(schema_id == F.lit(bad), F.lit(f"schema id {bad}: {why}; value "))
    if None not in writers.by_id:
        known = sorted(k for k in writers.by_id if k is not None)
        problem = problem.when(
            ~schema_id.isin(known) if known else F.lit(True),
            F.concat(
                F.lit("schema id "),
                schema_id.cast("string"),
                F.lit(f" is not in {writers.source}; value "),
            ),
        )
    return problem.otherwise(
        F.concat(
            F.lit("value is not an Avro record of writer schema id "),
            schema_id.cast("string"),
            F.lit(": "),
        )
    )
