"""A registry with one small version per estimator scorestream trains, for the compiled-model
and SQL-export parity tests."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from scorestream.contract.synthetic import SPEC, generate_columns
from scorestream.models.pipeline import ESTIMATORS, EstimatorSettings
from scorestream.models.registry import Registry
from scorestream.models.train import TrainSettings, synthetic_frame, train

# Small ensembles keep training to seconds; depth 4 still puts every feature in the splits.
SMALL = {"num_trees": 12, "max_iter": 12, "max_depth": 4}


@pytest.fixture(scope="session")
def estimator_registry(
    spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Registry, dict[str, int]]:
    """(registry, {estimator kind: version}) with logistic, random_forest and gbt versions."""
    root = tmp_path_factory.mktemp("estimators")
    frame = synthetic_frame(spark, 3_000, seed=23).cache()
    versions: dict[str, int] = {}
    for kind in ESTIMATORS:
        settings = EstimatorSettings(kind=kind, **SMALL)  # type: ignore[arg-type]
        entry = train(
            spark,
            frame,
            SPEC,
            TrainSettings(registry=root, estimator=settings, seed=23, promote=False),
            fingerprint=f"synthetic:rows=3000:seed=23:{kind}",
            source="synthetic",
            progress=lambda _m: None,
        )
        versions[kind] = entry.version
    frame.unpersist()
    return Registry(root), versions


def hard_rows(rows: int, seed: int) -> list[tuple[Any, ...]]:
    """Feature rows (in SPEC.feature_names order) with unseen and null categories, and null and
    NaN numerics."""
    frame = pd.DataFrame(generate_columns(rows, seed=seed))[SPEC.feature_names]
    records: list[list[Any]] = [
        [None if pd.isna(v) else (float(v) if isinstance(v, int | float) else v) for v in row]
        for row in frame.itertuples(index=False)
    ]
    col = {name: i for i, name in enumerate(SPEC.feature_names)}
    for i, record in enumerate(records):
        if i < 100:
            record[col["merchant_category"]] = "space_tourism"
        elif i < 150:
            record[col["country"]] = None
        elif i < 200:
            record[col["merchant_category"]] = None
        elif i < 300:
            record[col["amount"]] = float("nan")
        elif i < 350:
            record[col["card_age_days"]] = None
        elif i < 400:
            record[col["distance_from_home_km"]] = float("nan")
            record[col["country"]] = "AQ"
    return [tuple(r) for r in records]


def feature_frame(spark: Any, rows: list[tuple[Any, ...]], with_id: bool = False) -> Any:
    """A DataFrame of `rows` typed as in training; `row_id` (0, 1, ...) first when asked."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    if with_id:
        rows = [(i, *r) for i, r in enumerate(rows)]
    schema = StructType(
        [StructField("row_id", LongType())] * with_id
        + [StructField(n, DoubleType()) for n in SPEC.numeric_names]
        + [StructField(c, StringType()) for c in SPEC.categorical]
    )
    return spark.createDataFrame(rows, schema)
