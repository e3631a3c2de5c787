"""One feature typing and one scoring function, for the stream, batch, shadow, drift report and
training alike.

`typed_features` turns a frame's declared features into doubles and strings by one rule (the
stream's decoder types each decoded value with the same `typed_number`); `score` adds the score
record's fields to typed rows, with the types of schemas/score.avsc, read from that file.

`scored_at` is the wall clock when the row is scored, evaluated per row (see `scoring_clock`),
in every caller: a batch job's rows carry the moments they were scored, not one time for the
job, exactly as the stream's records do.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from scorestream.avro import SCORE_SCHEMA, read_schema
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError, DataError
from scorestream.models.evaluate import score_column

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

    from scorestream.models.compile import CompiledModel

OnBad = Literal["raise", "null"]
ON_BAD = ("raise", "null")
# The score record's own fields (the rest of schemas/score.avsc: the event's id and time).
SCORE = "score"
PREDICTION = "prediction"
MODEL_VERSION = "model_version"
SCORED_AT = "scored_at"
_SAMPLE = 3  # bad values shown in a DataError
# Spark SQL types of the Avro types the score schema uses.
_AVRO_TYPES = {
    "string": "string",
    "double": "double",
    "float": "float",
    "int": "int",
    "long": "bigint",
    "boolean": "boolean",
    "timestamp-millis": "timestamp",
    "timestamp-micros": "timestamp",
}


@cache
def score_types() -> tuple[tuple[str, str], ...]:
    """(field, Spark SQL type) of the score record, in schemas/score.avsc's order."""
    fields = []
    for field in read_schema(SCORE_SCHEMA)["fields"]:
        kind: Any = field["type"]
        name = str(kind.get("logicalType", kind["type"]) if isinstance(kind, dict) else kind)
        fields.append((field["name"], _AVRO_TYPES[name]))
    return tuple(fields)


def score_record_columns(spec: FeatureSpec, present: list[str] | None = None) -> list[Column]:
    """The score record's fields of a scored frame, named and typed as schemas/score.avsc says
    (the id and event time read from the spec's columns). `present`: the input's columns, when
    the id or the event time may be absent (a batch file without them); those are left out."""
    from pyspark.sql import functions as F

    source = {"event_id": spec.event_id, "event_time": spec.event_time}
    columns = []
    for name, kind in score_types():
        column = source.get(name, name)
        if name in source and present is not None and column not in present:
            continue
        columns.append(F.col(f"`{column}`").cast(kind).alias(name))
    return columns


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


def typed_number(value: Column, kind: DataType, empty_is_missing: bool) -> tuple[Column, Column]:
    """A numeric feature as double, and where the value is there but is not a number.

    Numbers and booleans are cast. Text is parsed: surrounding blanks are ignored, `NaN` and
    `Infinity` are numbers (JSON's reader hands those tokens over quoted), and an empty text is
    missing when `empty_is_missing` (a CSV cell) and a bad value otherwise (a JSON string).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType, StringType

    if isinstance(kind, NumericType | BooleanType):
        return value.cast("double"), F.lit(False)
    if not isinstance(kind, StringType):
        msg = f"decoded as {kind.simpleString()}; expected a number or text"
        raise TypeError(msg)
    # The regex only runs on the rare value that starts with a quote.
    text = F.when(
        value.startswith('"'), F.regexp_replace(value, r'^"([+-]?(NaN|Infinity))"$', "$1")
    ).otherwise(value)
    if empty_is_missing:
        text = F.when(F.trim(text) != F.lit(""), text)
    number = text.try_cast("double")
    return number, text.isNotNull() & number.isNull()


def typed_features(
    frame: DataFrame, spec: FeatureSpec, on_bad: OnBad = "raise", where: str = "data"
) -> DataFrame:
    """`frame` with numeric features as double and categoricals as string, other columns kept.

    Empty text counts as missing (imputed), not as a bad value. A value that is not a number:
    `on_bad="raise"` fails with a DataError naming the column, the count and examples (`where`
    names the data in it); `"null"` makes it missing.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    if on_bad not in ON_BAD:
        msg = f"unknown on_bad {on_bad!r}; expected one of {', '.join(ON_BAD)}"
        raise ConfigError(msg)
    types = {f.name: f.dataType for f in frame.schema.fields}
    numbers: dict[str, Column] = {}
    checks = []
    for name in spec.numeric_names:
        raw, kind = F.col(f"`{name}`"), types[name]
        try:
            number, bad = typed_number(raw, kind, empty_is_missing=True)
        except TypeError as exc:
            if on_bad == "raise":
                msg = (
                    f"{where}: numeric feature {name!r} has type {kind.simpleString()}; "
                    "expected a number"
                )
                raise DataError(msg) from exc
            # Any other type (a nested JSON value): its text, which is then no number.
            kind = StringType()
            number, bad = typed_number(raw.cast("string"), kind, empty_is_missing=True)
        numbers[name] = number
        if on_bad == "raise" and isinstance(kind, StringType):
            checks.append((name, bad))
    if checks:
        _raise_on_bad(frame, checks, where)
    features = set(spec.feature_names)
    return frame.select(
        *[F.col(f"`{c}`") for c in frame.columns if c not in features],
        *[numbers[n].alias(n) for n in spec.numeric_names],
        *[F.col(f"`{c}`").cast("string").alias(c) for c in spec.categorical],
    )


def _raise_on_bad(frame: DataFrame, checks: list[tuple[str, Column]], where: str) -> None:
    from pyspark.sql import functions as F

    row = frame.agg(
        *[F.sum(F.when(bad, 1).otherwise(0)).alias(f"n{i}") for i, (_, bad) in enumerate(checks)]
    ).first()
    assert row is not None
    for i, (name, bad) in enumerate(checks):
        count = int(row[f"n{i}"] or 0)
        if count:
            shown = [r[0] for r in frame.where(bad).select(f"`{name}`").limit(_SAMPLE).collect()]
            msg = (
                f"{where}: numeric feature {name!r} holds {count} value(s) that are not "
                f"numbers, e.g. {shown}; expected numbers (empty means missing)"
            )
            raise DataError(msg)


Score = Callable[["DataFrame"], "DataFrame"]


def scorer_of(
    model: PipelineModel | None, version: int | None, compiled: CompiledModel | None = None
) -> Score:
    """`score` bound to one model version, for a caller that scores many frames with it: the
    model's params are copied to the JVM once (PySpark's `transform` copies every stage's on
    each call) and the score columns are built once."""
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import functions as F

    if compiled is None:
        if model is None:
            msg = "score needs a PipelineModel or its compiled form"
            raise ConfigError(msg)
        java_model = model._to_java()
        value, prediction = score_column(), F.col(PREDICTION)
    else:
        java_model = None
        value, prediction = compiled.columns()
    kinds = dict(score_types())
    added = (
        value.cast(kinds[SCORE]).alias(SCORE),
        prediction.cast(kinds[PREDICTION]).alias(PREDICTION),
        F.lit(version).cast(kinds[MODEL_VERSION]).alias(MODEL_VERSION),
        scoring_clock().cast(kinds[SCORED_AT]).alias(SCORED_AT),
    )

    def apply(frame: DataFrame) -> DataFrame:
        kept = [F.col(f"`{c}`") for c in frame.columns]
        if java_model is None:
            return frame.select(*kept, *added)
        # Only the frame's own columns and the score's come out: the stages' outputs
        # (features, probability, ...) would be carried and cached for nothing.
        transformed = SparkFrame(java_model.transform(frame._jdf), frame.sparkSession)
        return transformed.select(*kept, *added)

    return apply


def score(
    frame: DataFrame,
    model: PipelineModel | None,
    version: int | None,
    compiled: CompiledModel | None = None,
) -> DataFrame:
    """Typed feature rows (see `typed_features`) -> the same rows plus `score` (probability of
    the positive class), `prediction`, `model_version` (null for a model not yet registered)
    and `scored_at`, typed as schemas/score.avsc says. With `compiled`, the score is computed by
    the compiled expressions instead of the PipelineModel's stages."""
    return scorer_of(model, version, compiled)(frame)
