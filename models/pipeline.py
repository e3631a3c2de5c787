"""The Spark ML pipeline: impute numerics, index and one-hot categoricals, assemble, scale, fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.ml import Pipeline

ESTIMATORS = ("logistic", "random_forest", "gbt")


@dataclass(frozen=True)
class EstimatorSettings:
    """The estimator and its main hyper-parameters."""

    kind: str = "logistic"
    reg_param: float = 0.01
    elastic_net: float = 0.0
    max_iter: int = 100
    num_trees: int = 50
    max_depth: int = 5
    step_size: float = 0.1
    seed: int = 42

    def __post_init__(self) -> None:
        if self.kind not in ESTIMATORS:
            msg = f"unknown estimator {self.kind!r}; expected one of {', '.join(ESTIMATORS)}"
            raise ConfigError(msg)

    def params(self) -> dict[str, Any]:
        if self.kind == "logistic":
            return {
                "reg_param": self.reg_param,
                "elastic_net": self.elastic_net,
                "max_iter": self.max_iter,
            }
        if self.kind == "random_forest":
            return {"num_trees": self.num_trees, "max_depth": self.max_depth, "seed": self.seed}
        return {
            "max_iter": self.max_iter,
            "max_depth": self.max_depth,
            "step_size": self.step_size,
            "seed": self.seed,
        }


def imputed(name: str) -> str:
    return f"{name}__imputed"


def build_pipeline(spec: FeatureSpec, estimator: EstimatorSettings) -> Pipeline:
    """An unfitted pipeline for the spec; the label column must be numeric 0/1."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import (
        GBTClassifier,
        LogisticRegression,
        RandomForestClassifier,
    )
    from pyspark.ml.feature import (
        Imputer,
        OneHotEncoder,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )

    stages: list[Any] = []
    numeric = spec.numeric_names
    if numeric:
        stages.append(
            Imputer(inputCols=numeric, outputCols=[imputed(n) for n in numeric], strategy="median")
        )
    indexed = [f"{c}__index" for c in spec.categorical]
    onehot = [f"{c}__onehot" for c in spec.categorical]
    if spec.categorical:
        # "keep": unseen categories and nulls get their own index instead of failing the batch.
        stages.append(
            StringIndexer(
                inputCols=list(spec.categorical),
                outputCols=indexed,
                handleInvalid="keep",
                stringOrderType="frequencyDesc",
            )
        )
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=onehot, handleInvalid="keep"))
    stages.append(
        VectorAssembler(
            inputCols=[imputed(n) for n in numeric] + onehot,
            outputCol="features_raw",
            handleInvalid="keep",
        )
    )
    stages.append(
        StandardScaler(inputCol="features_raw", outputCol="features", withMean=False, withStd=True)
    )
    label = spec.label
    if estimator.kind == "logistic":
        stages.append(
            LogisticRegression(
                featuresCol="features",
                labelCol=label,
                regParam=estimator.reg_param,
                elasticNetParam=estimator.elastic_net,
                maxIter=estimator.max_iter,
            )
        )
    elif estimator.kind == "random_forest":
        stages.append(
            RandomForestClassifier(
                featuresCol="features",
                labelCol=label,
                numTrees=estimator.num_trees,
                maxDepth=estimator.max_depth,
                seed=estimator.seed,
            )
        )
    else:
        stages.append(
            GBTClassifier(
                featuresCol="features",
                labelCol=label,
                maxIter=estimator.max_iter,
                maxDepth=estimator.max_depth,
                stepSize=estimator.step_size,
                seed=estimator.seed,
            )
        )
    return Pipeline(stages=stages)
