"""SQL export: a version's probability as one SQL expression and a CREATE VIEW over a table of
feature columns, for PostgreSQL, SQLite or Spark SQL.

The expression comes from the same compiler as the compiled streaming scorer (models.compile),
and is checked against the PipelineModel (models.parity) before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scorestream.models.compile import CompiledModel
from scorestream.models.parity import choose_route
from scorestream.models.sqlexpr import check_dialect, quote_name

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    from scorestream.models.registry import ModelVersion

COLUMN_TYPES = {
    "postgres": ("double precision", "text"),
    "sqlite": ("REAL", "TEXT"),
    "spark": ("DOUBLE", "STRING"),
}


def view_name(version: int) -> str:
    return f"scorestream_v{version}_scores"


def view_sql(compiled: CompiledModel, version: int, dialect: str, table: str) -> str:
    """The CREATE VIEW statement(s): every column of `table` plus score, prediction and
    model_version."""
    check_dialect(dialect)
    score, prediction = compiled.sql(dialect)
    view, source = quote_name(view_name(version), dialect), quote_name(table, dialect)
    select = (
        f"SELECT *,\n  {score} AS score,\n  {prediction} AS prediction,\n"
        f"  {version} AS model_version\nFROM {source}"
    )
    if dialect == "postgres":
        return f"CREATE OR REPLACE VIEW {view} AS\n{select};\n"
    if dialect == "sqlite":  # SQLite has no CREATE OR REPLACE VIEW
        return f"DROP VIEW IF EXISTS {view};\nCREATE VIEW {view} AS\n{select};\n"
    return f"CREATE OR REPLACE TEMPORARY VIEW {view} AS\n{select};\n"


def _header(compiled: CompiledModel, version: int, dialect: str, table: str, check: str) -> str:
    spec = compiled.spec
    numeric_type, text_type = COLUMN_TYPES[dialect]
    inputs = [f"--   {n} {numeric_type}" for n in spec.numeric_names]
    inputs += [f"--   {c} {text_type}" for c in spec.categorical]
    return "\n".join(
        [
            f"-- scorestream model v{version} ({compiled.estimator}) as {dialect} SQL, "
            "compiled from its Spark PipelineModel.",
            f"-- Reads these columns of table {table!r} (rename it in the FROM clause):",
            *inputs,
            "-- Missing numerics (NULL, NaN) take the imputer's median; unseen or missing",
            "-- categories take the string indexer's 'keep' slot, as in Spark.",
            f"-- Checked against the PipelineModel at export: {check}.",
            "",
        ]
    )


def export_sql(
    spark: SparkSession,
    entry: ModelVersion,
    model: PipelineModel,
    output: Path,
    dialect: str,
    table: str = "features",
) -> tuple[Path, Path]:
    """Write the CREATE VIEW file to `output` and the bare probability expression beside it
    (`<stem>.score.sql`); returns both paths. Raises ModelError when the version does not
    compile or its compiled form disagrees with Spark."""
    check_dialect(dialect)
    route = choose_route(spark, model, entry.spec, entry.version, "on")
    compiled = route.compiled
    assert compiled is not None  # mode "on" raises instead
    header = _header(compiled, entry.version, dialect, table, route.reason)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(header + view_sql(compiled, entry.version, dialect, table), encoding="utf-8")
    expression = output.with_name(f"{output.stem}.score.sql")
    expression.write_text(compiled.sql(dialect)[0] + "\n", encoding="utf-8")
    return output, expression
