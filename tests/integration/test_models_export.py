"""Exports score like Spark: coefficients to 1e-9, PMML to 1e-6, ONNX to 1e-5, on 2,000 rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scorestream.contract.synthetic import SPEC, generate_columns
from scorestream.errors import ModelError
from scorestream.models.evaluate import score_column
from scorestream.models.export import export
from scorestream.models.export_onnx import export_onnx, onnx_scores
from scorestream.models.export_pmml import pmml_scores
from scorestream.models.registry import ModelVersion, Registry
from scorestream.models.scorer import CoefficientScorer

REPO = Path(__file__).resolve().parents[2]
ROWS = 2000


@pytest.fixture(scope="module")
def reference(spark: Any, trained_registry: Registry) -> pd.DataFrame:
    """Rows with unseen categories and missing values, and Spark's own probability for each."""
    frame = pd.DataFrame(generate_columns(ROWS, seed=77)).drop(columns=[SPEC.label])
    frame.loc[0:99, "merchant_category"] = "space_tourism"
    frame.loc[100:149, "country"] = None
    frame.loc[150:249, "amount"] = np.nan
    frame.loc[250:299, "card_age_days"] = np.nan
    _, model = trained_registry.load("champion")
    scored = model.transform(spark.createDataFrame(frame)).select(
        *SPEC.feature_names, score_column().alias("spark")
    )
    result = scored.toPandas()
    assert len(result) == ROWS
    return result


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = frame[SPEC.feature_names].to_dict("records")
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]


def test_coefficients_card_reproduces_spark_to_1e_9(
    trained_registry: Registry, reference: pd.DataFrame, tmp_path: Path
) -> None:
    entry, model = trained_registry.load("champion")
    path = export(None, entry, model, "coefficients", tmp_path / "card.json")
    scorer = CoefficientScorer.from_file(path)
    ours = np.array([scorer.score(r) for r in records(reference)])
    diff = np.abs(ours - reference["spark"].to_numpy())
    assert diff.max() < 1e-9, diff.max()


def test_onnx_matches_spark_to_1e_5(
    spark: Any, trained_registry: Registry, reference: pd.DataFrame, tmp_path: Path
) -> None:
    entry, model = trained_registry.load("champion")
    path = export_onnx(spark, entry, model, tmp_path / "model.onnx")
    columns = {c: list(reference[c]) for c in SPEC.feature_names}
    columns = {
        c: [None if isinstance(v, float) and np.isnan(v) else v for v in vals]
        for c, vals in columns.items()
    }
    ours = onnx_scores(path, columns, SPEC.numeric_names, list(SPEC.categorical))
    diff = np.abs(ours - reference["spark"].to_numpy())
    assert len(ours) == ROWS
    assert diff.max() < 1e-5, diff.max()


def test_pmml_from_the_cli_matches_spark_to_1e_6(
    trained_registry: Registry, reference: pd.DataFrame, tmp_path: Path
) -> None:
    """`models export --format pmml` in its own process (JPMML on its classpath), pypmml scores."""
    out = tmp_path / "model.pmml"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    cmd = [
        sys.executable,
        "-m",
        "scorestream",
        "models",
        "export",
        "champion",
        "--format",
        "pmml",
        "--output",
        str(out),
        "--registry",
        str(trained_registry.root),
        "--driver-memory",
        "1g",
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.stat().st_size > 1000
    ours = pmml_scores(out, reference[SPEC.feature_names])
    diff = np.abs(ours - reference["spark"].to_numpy())
    assert diff.max() < 1e-6, diff.max()


def test_tree_models_have_no_coefficients_card(
    trained_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    entry, model = trained_registry.load("champion")
    tree = ModelVersion(
        entry.version, entry.path, {**entry.metadata, "estimator": {"kind": "random_forest"}}
    )
    with pytest.raises(ModelError, match=r"not supported for this estimator \(random_forest"):
        export(None, tree, model, "coefficients")


def test_onnx_lists_the_unsupported_stages(
    spark: Any, trained_registry: Registry, tmp_path: Path
) -> None:
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    entry, model = trained_registry.load("champion")
    odd = PipelineModel([SQLTransformer(statement="SELECT * FROM __THIS__"), *model.stages])
    with pytest.raises(ModelError, match="no converter for the stage\\(s\\) SQLTransformer"):
        export_onnx(spark, entry, odd, tmp_path / "x.onnx")
