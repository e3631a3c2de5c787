"""`models export --format sql`: the view computes Spark's probability to 1e-9 on 2,000 rows
inside a real PostgreSQL, SQLite and Spark SQL, for every estimator we train."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fixtures_estimators import feature_frame, hard_rows

from scorestream.cli import main
from scorestream.contract.synthetic import SPEC
from scorestream.models.evaluate import score_column
from scorestream.models.export import export
from scorestream.models.export_sql import view_name
from scorestream.models.pipeline import ESTIMATORS
from scorestream.models.registry import Registry

ROWS = 2000
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def rows() -> list[tuple[Any, ...]]:
    return [(i, *r) for i, r in enumerate(hard_rows(ROWS, seed=8))]


def _spark_scores(spark: Any, model: Any, rows: list[tuple[Any, ...]]) -> dict[int, tuple]:
    from pyspark.sql import functions as F

    frame = feature_frame(spark, [r[1:] for r in rows], with_id=True)
    out = model.transform(frame).select("row_id", score_column().alias("p"), F.col("prediction"))
    return {r["row_id"]: (r["p"], r["prediction"]) for r in out.collect()}


def _compare(got: list[tuple[Any, ...]], want: dict[int, tuple]) -> float:
    assert len(got) == ROWS
    worst = 0.0
    for row_id, score, prediction in got:
        assert score is not None and not math.isnan(score), row_id
        worst = max(worst, abs(score - want[row_id][0]))
        assert prediction == want[row_id][1], (row_id, prediction, want[row_id])
    return worst


def _columns(numeric: str, text: str) -> str:
    cols = ["row_id bigint" if numeric != "REAL" else "row_id INTEGER"]
    cols += [f"{n} {numeric}" for n in SPEC.numeric_names]
    cols += [f"{c} {text}" for c in SPEC.categorical]
    return ", ".join(cols)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_sql_view_matches_spark_in_postgres_sqlite_and_spark(
    spark: Any,
    postgres: str,
    estimator_registry: tuple[Registry, dict[str, int]],
    rows: list[tuple[Any, ...]],
    tmp_path: Path,
    kind: str,
) -> None:
    import psycopg

    registry, versions = estimator_registry
    entry, model = registry.load(versions[kind])
    want = _spark_scores(spark, model, rows)
    view = view_name(entry.version)
    query = f"SELECT row_id, score, prediction FROM {view} ORDER BY row_id"
    placeholders = ", ".join(["%s"] * (1 + len(SPEC.feature_names)))

    table = f"features_{kind}"
    pg_file = export(spark, entry, model, "sql", tmp_path / "pg.sql", "postgres", table)
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} ({_columns('double precision', 'text')})")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} VALUES ({placeholders})", rows)
        conn.execute(pg_file.read_text())
        got = conn.execute(query).fetchall()
    assert _compare(got, want) <= TOLERANCE

    # SQLite through the CLI, as a user runs it
    lite_file = tmp_path / "lite.sql"
    argv = ["models", "export", f"v{entry.version}", "--format", "sql", "--dialect", "sqlite"]
    argv += ["--registry", str(registry.root), "--output", str(lite_file)]
    assert main(argv) == 0
    assert (tmp_path / "lite.score.sql").read_text().startswith("(")
    db = sqlite3.connect(tmp_path / "scores.db")
    try:
        db.execute(f"CREATE TABLE features ({_columns('REAL', 'TEXT')})")
        db.executemany(f"INSERT INTO features VALUES ({placeholders.replace('%s', '?')})", rows)
        db.executescript(lite_file.read_text())
        got = db.execute(query).fetchall()
    finally:
        db.close()
    assert _compare(got, want) <= TOLERANCE

    spark_file = export(spark, entry, model, "sql", tmp_path / "spark.sql", dialect="spark")
    feature_frame(spark, [r[1:] for r in rows], with_id=True).createOrReplaceTempView("features")
    spark.sql(spark_file.read_text().strip().rstrip(";"))
    got = [tuple(r) for r in spark.sql(query).collect()]
    assert _compare(got, want) <= TOLERANCE


def test_unknown_dialect_is_refused_by_name(tmp_path: Path, capsys: Any) -> None:
    argv = ["models", "export", "v1", "--format", "sql", "--dialect", "oracle"]
    assert main([*argv, "--registry", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'oracle'" in err and "postgres, sqlite, spark" in err
