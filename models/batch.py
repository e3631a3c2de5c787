"""Batch prediction: score a file with a registry version, write Parquet or a database table.

Every input row comes out scored: missing numerics are imputed and unseen or missing categories
go to the indexer's "keep" bucket, as in the streaming scorer. Text in a numeric column is a
DataError naming the column, never a silently dropped row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorestream import fs
from scorestream.errors import ConfigError, DataError
from scorestream.models.data import check_columns, read_table, typed_features
from scorestream.models.evaluate import score_column
from scorestream.models.source import ModelSource

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession

    from scorestream.models.source import ModelEntry

# Drivers we can name from the URL; other databases need --jdbc-driver and their jar.
JDBC_DRIVERS = {
    "sqlite": "org.sqlite.JDBC",
    "postgresql": "org.postgresql.Driver",
    "mysql": "com.mysql.cj.jdbc.Driver",
    "mariadb": "org.mariadb.jdbc.Driver",
}
WRITE_MODES = ("overwrite", "append", "error")


@dataclass(frozen=True)
class BatchSettings:
    """What to score, with which model, and where the scores go."""

    input: str
    output: str | None = None
    model: str = "champion"
    input_format: str | None = None
    jdbc_url: str | None = None
    jdbc_table: str = "scores"
    jdbc_driver: str | None = None
    mode: str = "overwrite"
    keep_columns: bool = False

    def __post_init__(self) -> None:
        if not self.output and not self.jdbc_url:
            msg = "batch-score needs --output PATH, --jdbc-url URL, or both"
            raise ConfigError(msg)
        if self.mode not in WRITE_MODES:
            msg = f"unknown write mode {self.mode!r}; expected one of {', '.join(WRITE_MODES)}"
            raise ConfigError(msg)
        if self.jdbc_url and not self.jdbc_url.startswith("jdbc:"):
            # Only the scheme is shown: the rest of a URL may hold a user and password.
            scheme = self.jdbc_url.split(":", 1)[0] if ":" in self.jdbc_url else "none"
            msg = f"the JDBC URL must start with 'jdbc:' (its scheme is {scheme!r})"
            raise ConfigError(msg)

    def driver(self) -> str:
        """The JDBC driver class: --jdbc-driver, else the one known for the URL's database."""
        if self.jdbc_driver:
            return self.jdbc_driver
        kind = (self.jdbc_url or "").split(":", 2)[1] if self.jdbc_url else ""
        if kind not in JDBC_DRIVERS:
            msg = (
                f"no known JDBC driver for {kind!r} URLs; pass --jdbc-driver "
                f"(known: {', '.join(sorted(JDBC_DRIVERS))})"
            )
            raise ConfigError(msg)
        return JDBC_DRIVERS[kind]


def score_frame(
    frame: DataFrame, entry: ModelEntry, model: PipelineModel, keep_columns: bool = False
) -> DataFrame:
    """Typed input rows -> id/time (when present), features kept on request, score, version."""
    from pyspark.sql import functions as F

    spec = entry.spec
    scored = model.transform(frame)
    passthrough = [c for c in (spec.event_id, spec.event_time) if c in frame.columns]
    if keep_columns:
        passthrough += [c for c in frame.columns if c not in passthrough]
    return scored.select(
        *passthrough,
        score_column().alias("score"),
        F.col("prediction").cast("int").alias("prediction"),
        F.lit(entry.version).alias("model_version"),
        F.lit(dt.datetime.now(dt.UTC)).alias("scored_at"),
    )


def batch_score(
    spark: SparkSession, registry: ModelSource, settings: BatchSettings
) -> dict[str, int]:
    """Score `settings.input`; returns {"input": n, "scored": n, "model_version": v}."""
    entry, model = registry.load(settings.model)
    raw = read_table(spark, settings.input, settings.input_format)
    check_columns(raw, entry.spec, settings.input, label=False)
    frame = typed_features(raw, entry.spec, settings.input)
    scored = score_frame(frame, entry, model, settings.keep_columns).cache()
    try:
        total = raw.count()
        n_scored = scored.count()
        if n_scored != total:
            msg = f"{settings.input}: {total} rows read but {n_scored} scored"
            raise DataError(msg)
        if settings.output:
            scored.write.mode(settings.mode).parquet(str(fs.location(settings.output)))
        if settings.jdbc_url:
            write_jdbc(scored, settings)
    finally:
        scored.unpersist()
    return {"input": total, "scored": n_scored, "model_version": entry.version}


def write_jdbc(scored: DataFrame, settings: BatchSettings) -> None:
    """Write the scores to `settings.jdbc_table` (the URL may carry credentials: never shown)."""
    assert settings.jdbc_url is not None
    try:
        _ensure_table(scored, settings)
        (
            scored.write.format("jdbc")
            .option("url", settings.jdbc_url)
            .option("dbtable", settings.jdbc_table)
            .option("driver", settings.driver())
            .mode(settings.mode)
            .save()
        )
    except Exception as exc:  # Py4J wraps SQL errors; keep the first line, hide the URL
        text = str(exc).replace(settings.jdbc_url, "<jdbc-url>")
        msg = f"cannot write scores to table {settings.jdbc_table!r}: {_java_message(text, exc)}"
        raise DataError(msg) from exc


def _java_message(text: str, exc: Exception) -> str:
    """The Java exception's own line out of a Py4J error text (its first line says nothing)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if ("Exception:" in line or "Error:" in line) and not line.startswith("at "):
            return line[:300]
    return lines[0][:300] if lines else type(exc).__name__


_SQL_TYPES = {
    "string": "TEXT",
    "double": "DOUBLE PRECISION",
    "float": "REAL",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}


def _ensure_table(scored: DataFrame, settings: BatchSettings) -> None:
    """Create the table when missing: Spark 4.1's generic JDBC dialect takes SQLite's "no such
    table" for a failure instead of "create it", so the first write would fail."""
    assert settings.jdbc_url is not None
    jvm = scored.sparkSession.sparkContext._jvm
    assert jvm is not None
    jvm.org.apache.spark.sql.execution.datasources.jdbc.DriverRegistry.register(settings.driver())
    conn = jvm.java.sql.DriverManager.getConnection(settings.jdbc_url)
    try:
        tables = conn.getMetaData().getTables(None, None, settings.jdbc_table, None)
        exists = bool(tables.next())
        tables.close()
        if exists:
            return
        columns = ", ".join(
            f'"{name}" {_SQL_TYPES.get(kind, "TEXT")}' for name, kind in scored.dtypes
        )
        statement = conn.createStatement()
        statement.executeUpdate(f'CREATE TABLE "{settings.jdbc_table}" ({columns})')
        statement.close()
    finally:
        conn.close()
