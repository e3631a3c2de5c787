"""Decode feature events and decide, per record, whether it is scored or dead-lettered.

Everything here is a Spark column expression (JVM only, no Python UDF), so the same plan serves
micro-batch and real-time mode. Decoding yields typed columns plus a reason code and a message
for the first problem found; a null reason means the record will be scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorestream.contract.reasons import (
    DECODE_ERROR,
    MISSING_FIELD,
    NOT_FINITE,
    OUT_OF_RANGE,
    TOO_LARGE,
    WRONG_TYPE,
)
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

# Columns carried from the Kafka source record (prefixed so they never clash with features).
SOURCE_COLUMNS = {
    "key": "_src_key",
    "value": "_src_value",
    "topic": "_src_topic",
    "partition": "_src_partition",
    "offset": "_src_offset",
    "timestamp": "_src_timestamp",
}
REASON = "_reason"
MESSAGE = "_message"
CORRUPT = "_corrupt_record"


Check = tuple["Column", str, "Column"]


@dataclass(frozen=True)
class Decoded:
    """How Kafka rows are decoded: the selects to apply in order, the decoder's own checks
    (condition, reason, message; they may read helper columns of the last step) and the columns
    kept after validation.

    Only column expressions, never a DataFrame: they are built once and applied to every
    micro-batch (building them costs hundreds of round trips to the JVM).
    """

    steps: tuple[tuple[Column, ...], ...]
    checks: tuple[Check, ...]
    columns: tuple[str, ...]  # what the last step yields besides helper columns

    def apply(self, raw: DataFrame) -> DataFrame:
        frame = raw
        for step in self.steps:
            frame = frame.select(*step)
        return frame


@dataclass(frozen=True)
class ValidationSettings:
    """Limits applied to each record."""

    max_record_bytes: int = 1_048_576


def source_columns() -> list[Column]:
    """The Kafka record's own columns, renamed so they never clash with feature names."""
    from pyspark.sql import functions as F

    return [F.col(src).alias(dst) for src, dst in SOURCE_COLUMNS.items()]


def _shown(value: Column) -> Column:
    """A value for a message: at most 80 characters of it."""
    from pyspark.sql import functions as F

    return F.substring(F.coalesce(value, F.lit("null")), 1, 80)


Raw = dict[str, tuple["Column", "DataType"]]


def decoded_fields(
    steps: tuple[tuple[Column, ...], ...],
    spec: FeatureSpec,
    raw: Raw,
    failed: Column,
    failed_message: Column,
) -> Decoded:
    """The shared second half of every decoder: raw field values -> typed columns and checks.

    `steps` are the decoder's selects from the Kafka rows, yielding the source columns and what
    the raw values are read from; `raw` maps each declared field to the decoder's value for
    it and that value's Spark type (JSON: all text; Avro: the reader schema's types). `failed`
    is true where the record could not be decoded at all, `failed_message` says why. Numbers
    given as text are parsed (and a WRONG_TYPE when they do not parse), timestamps may be
    timestamps, epoch milliseconds or ISO-8601 text.
    """
    from pyspark.sql import functions as F

    typed: list[Column] = []
    wrong_type: list[tuple[Column, Column]] = []
    required = _required_names(spec)
    for name in spec.numeric_names:
        value, wrong = _number(name, *raw[name])
        typed.append(value.alias(name))
        if wrong is not None:
            wrong_type.append(wrong)
    for name in spec.categorical:
        typed.append(raw[name][0].cast("string").alias(name))
    event_time, wrong = _timestamp(spec.event_time, *raw[spec.event_time])
    if wrong is not None:
        wrong_type.append(wrong)
    second = (
        *[F.col(c) for c in SOURCE_COLUMNS.values()],
        raw[spec.event_id][0].cast("string").alias(spec.event_id),
        event_time.alias(spec.event_time),
        *typed,
        F.coalesce(failed, F.lit(False)).alias("_decode_failed"),
        # Messages are built for the failing records only: a projected column is computed for
        # every row, and these concatenations would be most of the per-row work.
        F.when(failed, failed_message).alias("_decode_message"),
        # Missing means absent or null as decoded: a value that is there but does not convert
        # is a WRONG_TYPE, not a missing field.
        *[raw[n][0].isNull().alias(f"_missing_{i}") for i, n in enumerate(required)],
        *[cond.alias(f"_wrong_{i}") for i, (cond, _) in enumerate(wrong_type)],
        *[F.when(cond, text).alias(f"_wrong_msg_{i}") for i, (cond, text) in enumerate(wrong_type)],
    )
    checks: list[Check] = [(F.col("_decode_failed"), DECODE_ERROR, F.col("_decode_message"))]
    checks += [
        (F.col(f"_missing_{i}"), MISSING_FIELD, F.lit(f"required field '{n}' is missing or null"))
        for i, n in enumerate(required)
    ]
    checks += [
        (F.col(f"_wrong_{i}"), WRONG_TYPE, F.col(f"_wrong_msg_{i}")) for i in range(len(wrong_type))
    ]
    columns = (
        *SOURCE_COLUMNS.values(),
        spec.event_id,
        spec.event_time,
        *spec.numeric_names,
        *spec.categorical,
    )
    return Decoded((*steps, second), tuple(checks), columns)


def _number(
    name: str, value: Column, kind: DataType
) -> tuple[Column, tuple[Column, Column] | None]:
    """A numeric feature as double, and its WRONG_TYPE check when the value may be text."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType, StringType

    if isinstance(kind, NumericType | BooleanType):
        return value.cast("double"), None
    if not isinstance(kind, StringType):
        msg = f"feature {name!r} is decoded as {kind.simpleString()}; expected a number or text"
        raise ConfigError(msg)
    # JSON has no NaN: Spark's reader accepts NaN/Infinity tokens, which it returns quoted.
    # The regex only runs on the rare value that starts with a quote.
    text = F.when(
        value.startswith('"'), F.regexp_replace(value, r'^"([+-]?(NaN|Infinity))"$', "$1")
    ).otherwise(value)
    number = text.try_cast("double")
    message = F.concat(F.lit(f"feature '{name}' is "), _shown(value), F.lit(", expected a number"))
    return number, (value.isNotNull() & number.isNull(), message)


def _timestamp(
    name: str, value: Column, kind: DataType
) -> tuple[Column, tuple[Column, Column] | None]:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, IntegralType, StringType, TimestampType

    if isinstance(kind, TimestampType):
        return value, None
    if isinstance(kind, DateType):
        return value.cast("timestamp"), None
    if isinstance(kind, IntegralType):
        return F.timestamp_millis(value.cast("long")), None
    if not isinstance(kind, StringType):
        msg = f"{name!r} is decoded as {kind.simpleString()}; expected a timestamp, long or text"
        raise ConfigError(msg)
    stamp = _parse_time(value)
    message = F.concat(
        F.lit(f"'{name}' is "),
        _shown(value),
        F.lit(", expected an ISO-8601 timestamp or epoch milliseconds"),
    )
    return stamp, (value.isNotNull() & stamp.isNull(), message)


def decode_json(spec: FeatureSpec) -> Decoded:
    """Kafka rows with JSON values -> typed feature columns plus their checks.

    Every declared field is first read as text, so a wrong type is told apart from a missing
    field.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    fields = [spec.event_id, spec.event_time, *spec.feature_names]
    schema = StructType(
        [StructField(n, StringType()) for n in fields] + [StructField(CORRUPT, StringType())]
    )
    parsed = F.from_json(
        F.col("value").cast("string"),
        schema,
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT},
    )
    first = (*source_columns(), parsed.alias("_json"))
    raw_text: Raw = {n: (F.col(f"_json.{n}"), StringType()) for n in fields}
    failed = F.col("_json").isNull() | F.col(f"_json.{CORRUPT}").isNotNull()
    # Kafka headers are text: bytes that are not UTF-8 are shown with replacement characters.
    shown = F.make_valid_utf8(F.col("_src_value").cast("string"))
    message = F.concat(F.lit("value is not a JSON object: "), _shown(shown))
    return decoded_fields((first,), spec, raw_text, failed, message)


def _parse_time(text: Column) -> Column:
    from pyspark.sql import functions as F

    millis = text.try_cast("long")
    return F.when(text.rlike(r"^-?\d+$"), F.timestamp_millis(millis)).otherwise(
        F.try_to_timestamp(text)
    )


def _required_names(spec: FeatureSpec) -> list[str]:
    return [spec.event_id, spec.event_time] + [f.name for f in spec.numeric if f.required]


def _value_checks(spec: FeatureSpec) -> list[Check]:
    from pyspark.sql import functions as F

    checks: list[Check] = []
    for feature in spec.numeric:
        col = F.col(feature.name)
        if not feature.allow_nan:
            checks.append(
                (
                    F.isnan(col) | (F.abs(col) == float("inf")),
                    NOT_FINITE,
                    F.concat(
                        F.lit(f"feature '{feature.name}' is "),
                        col.cast("string"),
                        F.lit(", expected a finite number"),
                    ),
                )
            )
    for feature in spec.numeric:
        col = F.col(feature.name)
        bounds = (
            f"[{'-inf' if feature.min is None else feature.min}, "
            f"{'inf' if feature.max is None else feature.max}]"
        )
        outside = F.lit(False)
        if feature.min is not None:
            outside = outside | (col < F.lit(feature.min))
        if feature.max is not None:
            outside = outside | (col > F.lit(feature.max))
        if feature.min is not None or feature.max is not None:
            checks.append(
                (
                    outside & ~F.isnan(col),
                    OUT_OF_RANGE,
                    F.concat(
                        F.lit(f"feature '{feature.name}' is "),
                        col.cast("string"),
                        F.lit(f", expected a value in {bounds}"),
                    ),
                )
            )
    return checks


def validate(decoded: Decoded, spec: FeatureSpec, settings: ValidationSettings) -> Decoded:
    """The decoding plus a last select that adds `_reason` and `_message` for the first failed
    check (null when the record is good) and drops the helper columns."""
    from pyspark.sql import functions as F

    size = F.octet_length(F.col("_src_value"))
    checks = [
        (
            size > F.lit(settings.max_record_bytes),
            TOO_LARGE,
            F.concat(
                F.lit("record is "),
                size.cast("string"),
                F.lit(f" bytes, larger than the limit of {settings.max_record_bytes}"),
            ),
        )
    ]
    checks += list(decoded.checks) + _value_checks(spec)
    # The index of the first failing check, by one flat CASE (Spark splits its branches into
    # methods the JIT compiles; a nested chain of 25 CASEs was one method too big for it).
    # Every condition is evaluated once per row, and the reason and message are looked up by
    # the index (Spark keeps the two selects apart: it never inlines a costly expression that
    # is read twice).
    first = F.when(F.coalesce(checks[0][0], F.lit(False)), F.lit(0))
    for i, (cond, _, _) in enumerate(checks[1:], start=1):
        first = first.when(F.coalesce(cond, F.lit(False)), F.lit(i))
    index = F.col("_check")
    message = F.when(index == F.lit(0), checks[0][2])
    for i, (_, _, text) in enumerate(checks[1:], start=1):
        message = message.when(index == F.lit(i), text)
    codes = F.array(*[F.lit(code) for _, code, _ in checks])
    last = (
        *[F.col(f"`{c}`") for c in decoded.columns],
        F.when(index.isNotNull(), F.element_at(codes, index + 1)).alias(REASON),
        message.alias(MESSAGE),
    )
    steps = (*decoded.steps, (F.col("*"), first.alias("_check")), last)
    return Decoded(steps, (), (*decoded.columns, REASON, MESSAGE))
