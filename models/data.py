"""Reading a user's tabular file (CSV or Parquet) and checking it against the feature spec.

Every check names the column and what was expected, and fails before any fitting starts:
an empty file, a declared column the file lacks, a numeric feature holding text, a label that is
not binary. Values come out cast: numerics as double (missing stays null, imputed later),
categoricals as string, the label as double 0/1.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from scorestream import fs
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import DataError, ScorestreamError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FORMATS = ("csv", "parquet")
NUMERIC_TYPES = ("double", "float", "int", "bigint", "smallint", "tinyint", "boolean")
_SAMPLE = 3


def detect_format(path: str, fmt: str | None = None) -> str:
    """`csv` or `parquet`, from the flag or the file name."""
    if fmt:
        if fmt not in FORMATS:
            msg = f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}"
            raise DataError(msg)
        return fmt
    name = path.rstrip("/").lower()
    for known in FORMATS:
        if name.endswith(f".{known}") or name.endswith(f".{known}.gz"):
            return known
    where = fs.location(path)
    if any(n.endswith(".parquet") for n in fs.store(where).names(where)):
        return "parquet"
    msg = f"cannot tell the format of {path!r} from its name; pass --format csv or parquet"
    raise DataError(msg)


def fingerprint(path: str) -> str:
    """sha256 over the file's bytes (all part files of a directory, in name order); on a Hadoop
    file system over the names, sizes and modification times (reading it all would be slow)."""
    where = fs.location(path)
    if isinstance(where, fs.HadoopPath):
        return _listing_fingerprint(where)
    root = where
    if not root.exists():
        return f"unreadable:{path}"
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        if file.name.startswith((".", "_")):
            continue
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _listing_fingerprint(root: fs.HadoopPath) -> str:
    try:
        files = fs.HadoopStore(root.scheme).files(root)
    except (OSError, ScorestreamError):
        return f"unreadable:{root}"
    digest = hashlib.sha256()
    for name, size, modified in files:
        if not name.rsplit("/", 1)[-1].startswith((".", "_")):
            digest.update(f"{name}:{size}:{modified}\n".encode())
    return f"listing-sha256:{digest.hexdigest()}"


def read_table(spark: SparkSession, path: str, fmt: str | None = None) -> DataFrame:
    """The raw file as a DataFrame (CSV read as text, so a bad value can be shown as written)."""
    kind = detect_format(path, fmt)
    where = fs.location(path)
    if not fs.store(where, spark).exists(where):
        msg = f"data file {path} does not exist"
        raise DataError(msg)
    try:
        if kind == "csv":
            reader = spark.read.option("header", "true").option("inferSchema", "false")
            return reader.csv(str(where))
        return spark.read.parquet(str(where))
    except Exception as exc:  # Spark's AnalysisException and friends: report the path
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        msg = f"cannot read {kind} data {path}: {first}"
        raise DataError(msg) from exc


def check_columns(frame: DataFrame, spec: FeatureSpec, where: str, label: bool) -> None:
    """Every declared feature (and the label when `label`) is a column of `frame`."""
    present = set(frame.columns)
    wanted = [*spec.feature_names, *([spec.label] if label else [])]
    for name in wanted:
        if name not in present:
            kind = "label" if name == spec.label else "feature"
            msg = (
                f"{where}: the declared {kind} column {name!r} is missing "
                f"(the file has {sorted(present)})"
            )
            raise DataError(msg)


def typed_features(frame: DataFrame, spec: FeatureSpec, where: str) -> DataFrame:
    """`frame` with numerics cast to double and categoricals to string; text in a numeric fails.

    Empty strings in a CSV count as missing (imputed), not as bad values.
    """
    from pyspark.sql import functions as F

    types = dict(frame.dtypes)
    checks = []
    for name in spec.numeric_names:
        kind = types[name]
        if kind in NUMERIC_TYPES or kind.startswith("decimal"):
            continue
        if kind != "string":
            msg = f"{where}: numeric feature {name!r} has type {kind}; expected a number"
            raise DataError(msg)
        text = F.trim(F.col(name))
        bad = text.isNotNull() & (text != "") & text.try_cast("double").isNull()
        checks.append((name, bad))
    if checks:
        row = frame.agg(
            *[
                F.sum(F.when(bad, 1).otherwise(0)).alias(f"n{i}")
                for i, (_, bad) in enumerate(checks)
            ]
        ).first()
        assert row is not None
        for i, (name, bad) in enumerate(checks):
            count = int(row[f"n{i}"] or 0)
            if count:
                shown = [r[0] for r in frame.where(bad).select(name).limit(_SAMPLE).collect()]
                msg = (
                    f"{where}: numeric feature {name!r} holds {count} value(s) that are not "
                    f"numbers, e.g. {shown}; expected numbers (empty means missing)"
                )
                raise DataError(msg)
    keep = [c for c in frame.columns if c not in set(spec.feature_names)]
    cols = [F.col(c) for c in keep]
    for name in spec.numeric_names:
        value = F.col(name)
        if types[name] == "string":
            value = F.when(F.trim(value) == "", F.lit(None)).otherwise(F.trim(value))
        cols.append(value.cast("double").alias(name))
    cols += [F.col(c).cast("string").alias(c) for c in spec.categorical]
    return frame.select(*cols)


def typed_label(frame: DataFrame, spec: FeatureSpec, where: str) -> DataFrame:
    """`frame` with the label as double 0/1; anything else (or a missing label) fails."""
    from pyspark.sql import functions as F

    label = spec.label
    kind = dict(frame.dtypes)[label]
    raw = F.col(label)
    if kind == "boolean":
        value = raw.cast("double")
    elif kind == "string":
        text = F.lower(F.trim(raw))
        value = (
            F.when(text.isin("1", "1.0", "true"), F.lit(1.0))
            .when(text.isin("0", "0.0", "false"), F.lit(0.0))
            .otherwise(F.lit(None).cast("double"))
        )
    else:
        value = F.when(raw.cast("double").isin(0.0, 1.0), raw.cast("double"))
    values = [
        (r[0], int(r[1]))
        for r in frame.where(value.isNull())
        .groupBy(raw.cast("string"))
        .count()
        .orderBy(F.desc("count"))
        .limit(5)
        .collect()
    ]
    if values:
        shown = ", ".join(f"{v!r} ({n} rows)" for v, n in values)
        msg = f"{where}: label column {label!r} is not binary: it holds {shown}; expected 0 or 1"
        raise DataError(msg)
    present = {r[0] for r in frame.select(value.alias("y")).distinct().collect()}
    if present != {0.0, 1.0}:
        msg = (
            f"{where}: label column {label!r} holds only {sorted(present)}; "
            "expected both classes 0 and 1 to train a classifier"
        )
        raise DataError(msg)
    return frame.withColumn(label, value)


def load_training_data(
    spark: SparkSession, path: str, spec: FeatureSpec, fmt: str | None = None
) -> DataFrame:
    """A user's file, checked against the spec and typed for `models.train.train`."""
    frame = read_table(spark, path, fmt)
    if not frame.columns or frame.limit(1).count() == 0:
        msg = f"data file {path} is empty: expected a header and at least one row"
        raise DataError(msg)
    check_columns(frame, spec, path, label=True)
    frame = typed_features(frame, spec, path)
    return typed_label(frame, spec, path)
