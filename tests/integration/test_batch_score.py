"""Batch prediction: every row scored (unseen categories, missing values); Parquet and SQLite."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scorestream.contract.synthetic import SPEC, generate_columns
from scorestream.errors import ConfigError, DataError
from scorestream.models.batch import BatchSettings, batch_score
from scorestream.models.registry import Registry

REPO = Path(__file__).resolve().parents[2]


def scoring_file(path: Path, rows: int) -> pd.DataFrame:
    """Synthetic events with unseen categories and missing values mixed in, label dropped."""
    frame = pd.DataFrame(generate_columns(rows, seed=21)).drop(columns=[SPEC.label])
    frame["event_id"] = [f"e{i}" for i in range(rows)]
    frame.loc[0:49, "merchant_category"] = "space_tourism"  # never seen in training
    frame.loc[50:99, "country"] = None
    frame.loc[100:149, "amount"] = np.nan
    frame.loc[150:199, "hour_of_day"] = np.nan
    frame.to_csv(path, index=False)
    return frame


def test_every_row_scores_including_unseen_and_missing(
    spark: Any, trained_registry: Registry, tmp_path: Path
) -> None:
    source = scoring_file(tmp_path / "events.csv", 1500)
    out = tmp_path / "scores.parquet"
    result = batch_score(
        spark, trained_registry, BatchSettings(input=str(tmp_path / "events.csv"), output=str(out))
    )
    assert result == {
        "input": 1500,
        "scored": 1500,
        "model_version": trained_registry.resolve("champion"),
    }
    scores = pd.read_parquet(out).set_index("event_id").loc[source["event_id"]]
    assert scores["score"].notna().all()
    assert scores["score"].between(0, 1).all()
    assert set(scores["prediction"]) <= {0, 1}
    # the odd rows score like their neighbours, not as an error bucket
    assert scores["score"].iloc[:200].std() > 0
    assert (scores["model_version"] == result["model_version"]).all()


def test_text_in_a_numeric_column_is_an_error_not_a_dropped_row(
    spark: Any, trained_registry: Registry, tmp_path: Path
) -> None:
    frame = scoring_file(tmp_path / "events.csv", 50)
    frame["amount"] = frame["amount"].astype(str)
    frame.loc[7, "amount"] = "12,50 EUR"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"numeric feature 'amount' holds 1 value.*'12,50 EUR'"):
        batch_score(
            spark,
            trained_registry,
            BatchSettings(input=str(tmp_path / "bad.csv"), output=str(tmp_path / "o")),
        )
    frame.drop(columns=["country"]).to_csv(tmp_path / "nocountry.csv", index=False)
    with pytest.raises(DataError, match="declared feature column 'country' is missing"):
        batch_score(
            spark,
            trained_registry,
            BatchSettings(input=str(tmp_path / "nocountry.csv"), output=str(tmp_path / "o")),
        )
    with pytest.raises(ConfigError, match="needs --output PATH, --jdbc-url URL"):
        BatchSettings(input="x.csv")


def test_cli_writes_parquet_and_a_sqlite_table(trained_registry: Registry, tmp_path: Path) -> None:
    """The real command in its own process: the SQLite JDBC driver jar joins Spark's classpath."""
    source = scoring_file(tmp_path / "events.csv", 1200)
    db = tmp_path / "scores.db"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    cmd = [
        sys.executable,
        "-m",
        "scorestream",
        "batch-score",
        "--input",
        str(tmp_path / "events.csv"),
        "--output",
        str(tmp_path / "scores.parquet"),
        "--jdbc-url",
        f"jdbc:sqlite:{db}",
        "--jdbc-table",
        "fraud_scores",
        "--registry",
        str(trained_registry.root),
        "--model",
        "champion",
        "--driver-memory",
        "1g",
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    version = trained_registry.resolve("champion")
    assert f"scored 1200 of 1200 rows with v{version}" in done.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT event_id, score, prediction, model_version FROM fraud_scores"
        ).fetchall()
    assert len(rows) == 1200
    assert {r[0] for r in rows} == set(source["event_id"])
    assert all(0.0 <= r[1] <= 1.0 for r in rows)
    assert {r[3] for r in rows} == {version}
    parquet = pd.read_parquet(tmp_path / "scores.parquet").set_index("event_id")
    from_db = pd.Series({r[0]: r[1] for r in rows})
    assert np.allclose(parquet.loc[from_db.index, "score"].to_numpy(), from_db.to_numpy())
