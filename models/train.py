"""Train, evaluate and publish a model: from historical rows to a registry version."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scorestream.contract.spec import FeatureSpec
from scorestream.fs import Location
from scorestream.models.evaluate import evaluate
from scorestream.models.pipeline import EstimatorSettings, build_pipeline
from scorestream.models.profile import build_profile
from scorestream.models.registry import Registry
from scorestream.models.scoring import score, typed_features

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from scorestream.models.source import ModelEntry


@dataclass(frozen=True)
class TrainSettings:
    """What to train and where to publish it."""

    registry: Location | str  # a directory or a Hadoop file-system URI
    estimator: EstimatorSettings = field(default_factory=EstimatorSettings)
    validation_fraction: float = 0.2
    seed: int = 42
    promote: bool = True
    # Log and register in this MLflow registered model instead of the registry directory.
    mlflow_model: str = ""
    mlflow_uri: str = ""


def _progress(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


def train(
    spark: SparkSession,
    frame: DataFrame,
    spec: FeatureSpec,
    settings: TrainSettings,
    fingerprint: str,
    source: str,
    progress: Callable[[str], None] = _progress,
    holdout: DataFrame | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ModelEntry:
    """Fit the pipeline on a seeded split, evaluate on the rest, publish (to the registry or
    MLflow), optionally promote.

    With `holdout`, all of `frame` is fitted and `holdout` is the evaluation slice (retraining
    holds out the newest events); `extra` adds keys to the version's metadata (its lineage).
    """
    import pyspark
    from pyspark.sql import functions as F

    started = time.monotonic()
    columns: list[Column | str] = [*spec.feature_names]
    columns.append(F.col(spec.label).cast("double").alias(spec.label))

    def typed(rows: DataFrame) -> DataFrame:
        return typed_features(rows, spec, where=source).select(*columns)

    data = typed(frame)
    if holdout is None:
        train_df, valid_df = data.randomSplit(
            [1 - settings.validation_fraction, settings.validation_fraction], seed=settings.seed
        )
    else:
        train_df, valid_df = data, typed(holdout)
    train_df = train_df.cache()
    n_train = train_df.count()
    progress(
        f"fitting {settings.estimator.kind} on {n_train} rows "
        f"({len(spec.feature_names)} features) ..."
    )
    model = build_pipeline(spec, settings.estimator).fit(train_df)
    progress(f"evaluating on the validation split ({time.monotonic() - started:.1f} s so far) ...")
    # Not registered yet: the version is the registry's to give, so model_version is null.
    metrics = evaluate(score(valid_df, model, None), spec.label)
    progress("computing the reference profile for drift monitoring ...")
    profile = build_profile(score(train_df, model, None), spec, F.col("score"))
    train_df.unpersist()

    metadata = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "spark_version": pyspark.__version__,
        "estimator": {"kind": settings.estimator.kind, **settings.estimator.params()},
        "feature_spec": spec.to_dict(),
        "training": {
            "source": source,
            "fingerprint": fingerprint,
            "rows": n_train,
            "validation_fraction": settings.validation_fraction,
            "seed": settings.seed,
        },
        "metrics": metrics,
        **(extra or {}),
    }
    if settings.mlflow_model:
        from scorestream.models.mlflow_log import log_version
        from scorestream.models.mlflow_source import MlflowSource

        mlflow = MlflowSource(settings.mlflow_uri, settings.mlflow_model)
        logged = log_version(mlflow, model, spec, profile, metadata, settings.promote)
        progress(
            f"logged and registered {logged.path} in {time.monotonic() - started:.1f} s"
            + (" (champion)" if settings.promote else "")
        )
        return logged

    def write(model_dir: Location) -> dict[str, Any]:
        model.write().save(str(model_dir))
        return metadata

    registry = Registry(settings.registry, spark)
    entry = registry.publish(write, profile)
    progress(f"published v{entry.version} to {registry.root} in {time.monotonic() - started:.1f} s")
    if settings.promote:
        registry.promote(entry.version, "champion", reason="trained and promoted by `train`")
        progress(f"champion -> v{entry.version}")
    return entry


ROWS_PER_SLICE = 4_000  # ~0.4 MB a task: below Spark's 1 MB "task of very large size" mark


def synthetic_frame(spark: SparkSession, rows: int, seed: int) -> DataFrame:
    """Synthetic labelled history from the same generator the producer uses.

    Handed to Spark in slices of ROWS_PER_SLICE rows: `createDataFrame(pandas)` ships the data
    in one task per core (1.4 MB each at 50k rows, with a warning per task).
    """
    import pandas as pd

    from scorestream.contract.synthetic import generate_columns

    cols = generate_columns(rows, seed=seed)
    schema = spark.createDataFrame(pd.DataFrame(cols).head(1)).schema
    records = list(zip(*(values.tolist() for values in cols.values()), strict=True))
    slices = max(spark.sparkContext.defaultParallelism, -(-rows // ROWS_PER_SLICE))
    return spark.createDataFrame(spark.sparkContext.parallelize(records, slices), schema)
