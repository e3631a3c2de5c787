"""Decode feature events and decide, per record, whether it is scored or dead-lettered.

Everything here is a Spark column expression (JVM only, no Python UDF), so the same plan serves
micro-batch and real-time mode. Decoding yields typed columns plus a reason code and a message
for the first problem found; a null reason means the record will be scored.

One module (about 440 lines) because every check ends in the one flat CASE that `validate`
builds, in one order (size, then the decoder's checks, then the values), and the decoders
(`decoded_fields`, shared by JSON and Avro) produce those checks: split, the order of the
reasons a record can get would live in two files.
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
from scorestream.models.scoring import typed_number

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

# The event_time window a record must fall in (epoch milliseconds, end exclusive):
# 2000-01-01T00:00:00Z to 2100-01-01T00:00:00Z. Numbers are epoch milliseconds; an epoch in
# seconds, microseconds or nanoseconds lands outside it and is dead-lettered OUT_OF_RANGE with
# a message saying which unit it looks like, never guessed (a guess is wrong for some values).
# The window also keeps every conversion and difference of event times inside 64 bits.
EVENT_TIME_MIN_MS = 946_684_800_000
EVENT_TIME_END_MS = 4_102_444_800_000

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
# The event time given as text, and what is read from it once per row (see _timestamp).
TIME_TEXT, TIME_INTEGER, TIME_MILLIS, TIME_PARSED = (
    "_time_text",
    "_time_integer",
    "_time_millis",
    "_time_parsed",
)


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
    event_time_min_ms: int = EVENT_TIME_MIN_MS
    event_time_end_ms: int = EVENT_TIME_END_MS  # exclusive

    def __post_init__(self) -> None:
        # Spark's timestamps span years 1 to 9999; the window must lie inside them.
        if not -62_135_596_800_000 <= self.event_time_min_ms < self.event_time_end_ms:
            msg = (
                f"event_time window [{self.event_time_min_ms}, {self.event_time_end_ms}) must "
                "be non-empty and start at or after year 1"
            )
            raise ConfigError(msg)
        if self.event_time_end_ms > 253_402_300_800_000:  # 10000-01-01
            msg = f"event_time window end {self.event_time_end_ms} is after year 9999"
            raise ConfigError(msg)

    def window_text(self) -> str:
        """The event_time window for messages and docs: ISO-8601 bounds."""
        import datetime as dt

        lo, hi = (
            dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for ms in (self.event_time_min_ms, self.event_time_end_ms)
        )
        return f"[{lo}, {hi})"


def source_columns() -> list[Column]:
    """The Kafka record's own columns, renamed so they never clash with feature names."""
    from pyspark.sql import functions as F

    return [F.col(src).alias(dst) for src, dst in SOURCE_COLUMNS.items()]


def _shown(value: Column) -> Column:
    """A value for a message: at most 80 characters of it."""
    from pyspark.sql import functions as F

    return F.substring(F.coalesce(value, F.lit("null")), 1, 80)


Raw = dict[str, tuple["Column", "DataType"]]


@dataclass(frozen=True)
class TypedFirst:
    """Numeric features a decoder could read typed (JSON: doubles straight from the parser),
    used for the rows where `ok` holds; the raw values serve the rest."""

    ok: Column
    numbers: dict[str, Column]


def decoded_fields(
    steps: tuple[tuple[Column, ...], ...],
    spec: FeatureSpec,
    raw: Raw,
    failed: Column,
    failed_message: Column,
    settings: ValidationSettings | None = None,
    typed_first: TypedFirst | None = None,
) -> Decoded:
    """The shared second half of every decoder: raw field values -> typed columns and checks.

    `steps` are the decoder's selects from the Kafka rows, yielding the source columns and what
    the raw values are read from; `raw` maps each declared field to the decoder's value for
    it and that value's Spark type (JSON: all text; Avro: the reader schema's types). `failed`
    is true where the record could not be decoded at all, `failed_message` says why. Numbers
    given as text are parsed (and a WRONG_TYPE when they do not parse), timestamps may be
    timestamps, epoch milliseconds or ISO-8601 text. With `typed_first`, its numbers are taken
    as they are where it holds, and the raw values are parsed only for the other rows.
    """
    from pyspark.sql import functions as F

    fast = typed_first.numbers if typed_first is not None else {}

    def either(typed_value: Column, raw_value: Column) -> Column:
        # A CASE, not an OR: Spark evaluates the raw branch only for the rows that need it.
        assert typed_first is not None
        return F.when(typed_first.ok, typed_value).otherwise(raw_value)

    typed: list[Column] = []
    wrong_type: list[tuple[Column, Column]] = []
    required = _required_names(spec)
    for name in spec.numeric_names:
        value, wrong = _number(name, *raw[name])
        if name in fast:
            value = either(fast[name], value)
            wrong = None if wrong is None else (either(F.lit(False), wrong[0]), wrong[1])
        typed.append(value.alias(name))
        if wrong is not None:
            wrong_type.append(wrong)
    missing = [
        either(fast[n].isNull(), raw[n][0].isNull()) if n in fast else raw[n][0].isNull()
        for n in required
    ]
    for name in spec.categorical:
        typed.append(raw[name][0].cast("string").alias(name))
    event_time, wrong, outside, time_helpers = _timestamp(
        spec.event_time, *raw[spec.event_time], settings or ValidationSettings()
    )
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
        *[m.alias(f"_missing_{i}") for i, m in enumerate(missing)],
        *[cond.alias(f"_wrong_{i}") for i, (cond, _) in enumerate(wrong_type)],
        *[F.when(cond, text).alias(f"_wrong_msg_{i}") for i, (cond, text) in enumerate(wrong_type)],
        outside[0].alias("_time_outside"),
        F.when(outside[0], outside[1]).alias("_time_outside_msg"),
    )
    checks: list[Check] = [(F.col("_decode_failed"), DECODE_ERROR, F.col("_decode_message"))]
    checks += [
        (F.col(f"_missing_{i}"), MISSING_FIELD, F.lit(f"required field '{n}' is missing or null"))
        for i, n in enumerate(required)
    ]
    checks += [
        (F.col(f"_wrong_{i}"), WRONG_TYPE, F.col(f"_wrong_msg_{i}")) for i in range(len(wrong_type))
    ]
    checks.append((F.col("_time_outside"), OUT_OF_RANGE, F.col("_time_outside_msg")))
    columns = (
        *SOURCE_COLUMNS.values(),
        spec.event_id,
        spec.event_time,
        *spec.numeric_names,
        *spec.categorical,
    )
    if time_helpers:
        steps = (*steps, (F.col("*"), *time_helpers))
    return Decoded((*steps, second), tuple(checks), columns)


def _number(
    name: str, value: Column, kind: DataType
) -> tuple[Column, tuple[Column, Column] | None]:
    """A numeric feature as double (models.scoring's rule), and its WRONG_TYPE check when the
    value may be text. An empty JSON string is a wrong type, not a missing value."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    try:
        number, bad = typed_number(value, kind, empty_is_missing=False)
    except TypeError as exc:
        msg = f"feature {name!r} is {exc}"
        raise ConfigError(msg) from exc
    if not isinstance(kind, StringType):
        return number, None
    message = F.concat(F.lit(f"feature '{name}' is "), _shown(value), F.lit(", expected a number"))
    return number, (bad, message)


def _timestamp(
    name: str, value: Column, kind: DataType, settings: ValidationSettings
) -> tuple[Column, tuple[Column, Column] | None, tuple[Column, Column], tuple[Column, ...]]:
    """The event time as a timestamp (null outside the window), its WRONG_TYPE check when the
    value may be text, its OUT_OF_RANGE check (outside the event_time window) and the helper
    columns these read, for a projection before theirs (none unless the value is text).

    Total: numbers are compared with the window as they are (text of any length, longs of
    any value) before any conversion, so no value can overflow one.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, IntegralType, StringType, TimestampType

    lo, hi = settings.event_time_min_ms, settings.event_time_end_ms
    expected = F.lit(f", expected epoch milliseconds or ISO-8601 within {settings.window_text()}")
    wrong: tuple[Column, Column] | None = None
    helpers: tuple[Column, ...] = ()
    if isinstance(kind, TimestampType | DateType):
        stamp = value.cast("timestamp")
        inside = stamp.isNull() | F.unix_millis(stamp).between(lo, hi - 1)
        digits = F.lit(None).cast("string")
    elif isinstance(kind, IntegralType):
        millis = value.cast("long")  # widening only
        inside = millis.isNull() | millis.between(lo, hi - 1)
        stamp = F.when(inside, F.timestamp_millis(millis))
        digits = millis.cast("string")
    elif isinstance(kind, StringType):
        # Each is computed once per row in a projection of its own (see decoded_fields): in
        # the checks and the CASE below they would be evaluated again at every use.
        text = value
        value = F.col(TIME_TEXT)
        integer = F.col(TIME_INTEGER)
        millis = F.col(TIME_MILLIS)
        parsed = F.col(TIME_PARSED)
        is_integer = text.rlike(r"^\s*[+-]?\d+\s*$")
        helpers = (
            text.alias(TIME_TEXT),
            is_integer.alias(TIME_INTEGER),
            # Null beyond 64 bits; the ISO-8601 parse only for text that is not a number.
            F.when(is_integer, F.trim(text).try_cast("long")).alias(TIME_MILLIS),
            F.when(~is_integer, F.try_to_timestamp(text)).alias(TIME_PARSED),
        )
        in_window = millis.between(lo, hi - 1)
        iso_in_window = F.unix_millis(parsed).between(lo, hi - 1)
        inside = value.isNull() | F.when(integer, F.coalesce(in_window, F.lit(False))).otherwise(
            parsed.isNull() | iso_in_window
        )
        stamp = F.when(integer & in_window, F.timestamp_millis(millis)).when(
            ~integer & iso_in_window, parsed
        )
        digits = F.when(integer, F.trim(value))
        message = F.concat(
            F.lit(f"'{name}' is "),
            _shown(value),
            F.lit(", expected an ISO-8601 timestamp or epoch milliseconds"),
        )
        wrong = (value.isNotNull() & ~integer & parsed.isNull(), message)
    else:
        msg = f"{name!r} is decoded as {kind.simpleString()}; expected a timestamp, long or text"
        raise ConfigError(msg)
    shown = value.cast("string") if not isinstance(kind, StringType) else value
    outside_message = F.concat(F.lit(f"'{name}' is "), _shown(shown), expected, _unit_hint(digits))
    return stamp, wrong, (~inside, outside_message), helpers


def _unit_hint(digits: Column) -> Column:
    """What unit an out-of-window epoch number looks like, by its number of digits (epoch
    seconds of these decades have 10, milliseconds 13, microseconds 16, nanoseconds 19)."""
    from pyspark.sql import functions as F

    n = F.length(F.regexp_replace(digits, r"^[+-]?0*", ""))
    negative = digits.startswith("-")
    return F.coalesce(
        F.when(negative, F.lit(" (negative: before 1970)"))
        .when(n.between(9, 11), F.lit(" (it looks like epoch seconds)"))
        .when(n.between(15, 17), F.lit(" (it looks like epoch microseconds)"))
        .when(n.between(18, 20), F.lit(" (it looks like epoch nanoseconds)")),
        F.lit(""),
    )


def decode_json(
    spec: FeatureSpec, settings: ValidationSettings | None = None, typed: bool = True
) -> Decoded:
    """Kafka rows with JSON values -> typed feature columns plus their checks.

    Typed first: one `from_json` reads the numeric features as doubles, and a record it reads
    cleanly (the usual case) is taken as read, with no number parsed from text. Only the other
    records are read again with every declared field as text, so a wrong type is told apart
    from a missing field and each keeps its reason and message. A clean typed read implies the
    text read's values: the same parser, the same strings, numbers converted alike.
    `typed=False` reads every record as text (what the typed read is tested against).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    fields = [spec.event_id, spec.event_time, *spec.feature_names]
    numeric = set(spec.numeric_names)
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}

    def read(column: str, number: DataType) -> Column:
        schema = StructType(
            [StructField(n, number if n in numeric else StringType()) for n in fields]
            + [StructField(CORRUPT, StringType())]
        )
        return F.from_json(F.col(column).cast("string"), schema, options)

    # Kafka headers are text: bytes that are not UTF-8 are shown with replacement characters.
    shown = F.make_valid_utf8(F.col("_src_value").cast("string"))
    message = F.concat(F.lit("value is not a JSON object: "), _shown(shown))
    if not typed:
        raw_text: Raw = {n: (F.col(f"_json.{n}"), StringType()) for n in fields}
        failed = F.col("_json").isNull() | F.col(f"_json.{CORRUPT}").isNotNull()
        steps = ((*source_columns(), read("value", StringType()).alias("_json")),)
        return decoded_fields(steps, spec, raw_text, failed, message, settings)
    first = (*source_columns(), read("value", DoubleType()).alias("_typed"))
    clean = F.col("_typed").isNotNull() & F.col(f"_typed.{CORRUPT}").isNull()
    second = (
        *[F.col(c) for c in SOURCE_COLUMNS.values()],
        F.col("_typed"),
        clean.alias("_typed_ok"),
        # Null for the cleanly typed records: only the others are read as text.
        F.when(~clean, read("_src_value", StringType())).alias("_json"),
    )
    ok = F.col("_typed_ok")
    raw: Raw = {n: (F.col(f"_json.{n}"), StringType()) for n in spec.numeric_names}
    for name in fields:
        if name not in numeric:
            value = F.when(ok, F.col(f"_typed.{name}")).otherwise(F.col(f"_json.{name}"))
            raw[name] = (value, StringType())
    failed = ~ok & (F.col("_json").isNull() | F.col(f"_json.{CORRUPT}").isNotNull())
    numbers = TypedFirst(ok, {n: F.col(f"_typed.{n}") for n in spec.numeric_names})
    return decoded_fields((first, second), spec, raw, failed, message, settings, numbers)


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
