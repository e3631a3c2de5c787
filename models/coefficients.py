"""The coefficients card: a fitted logistic-regression pipeline as plain JSON numbers.

The card holds each stage's fitted parameters in pipeline order (imputer surrogates, indexer
labels, one-hot sizes, assembler inputs, scaler statistics, coefficients and intercept), enough
for `models.scorer` to reproduce Spark's probability without Spark. Tree ensembles have no such
card: they fail with a clear message pointing to the PMML and ONNX exports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scorestream.errors import ModelError

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

    from scorestream.models.registry import ModelVersion

CARD_FORMAT = "scorestream-coefficients/1"


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _stage_card(stage: Any) -> dict[str, Any]:
    """One fitted stage as a dict with its `type`; unsupported stages raise ModelError."""
    from pyspark.ml.classification import LogisticRegressionModel
    from pyspark.ml.feature import (
        ImputerModel,
        OneHotEncoderModel,
        StandardScalerModel,
        StringIndexerModel,
        VectorAssembler,
    )

    if isinstance(stage, ImputerModel):
        surrogates = stage.surrogateDF.first()
        assert surrogates is not None
        inputs = stage.getInputCols()
        return {
            "type": "imputer",
            "input_cols": inputs,
            "output_cols": stage.getOutputCols(),
            "surrogates": [float(surrogates[c]) for c in inputs],
            "missing_value": float(stage.getMissingValue()),
        }
    if isinstance(stage, StringIndexerModel):
        return {
            "type": "string_indexer",
            "input_cols": stage.getInputCols(),
            "output_cols": stage.getOutputCols(),
            "labels": [list(labels) for labels in stage.labelsArray],
            "handle_invalid": stage.getHandleInvalid(),
        }
    if isinstance(stage, OneHotEncoderModel):
        return {
            "type": "one_hot",
            "input_cols": stage.getInputCols(),
            "output_cols": stage.getOutputCols(),
            "category_sizes": [int(s) for s in stage.categorySizes],
            "drop_last": bool(stage.getDropLast()),
            "handle_invalid": stage.getHandleInvalid(),
        }
    if isinstance(stage, VectorAssembler):
        return {
            "type": "assembler",
            "input_cols": stage.getInputCols(),
            "output_col": stage.getOutputCol(),
        }
    if isinstance(stage, StandardScalerModel):
        return {
            "type": "standard_scaler",
            "input_col": stage.getInputCol(),
            "output_col": stage.getOutputCol(),
            "with_mean": bool(stage.getWithMean()),
            "with_std": bool(stage.getWithStd()),
            "mean": _floats(stage.mean.toArray()),
            "std": _floats(stage.std.toArray()),
        }
    if isinstance(stage, LogisticRegressionModel):
        if stage.numClasses != 2:
            msg = f"coefficients export needs a binary logistic regression, got {stage.numClasses}"
            raise ModelError(msg)
        return {
            "type": "logistic_regression",
            "features_col": stage.getFeaturesCol(),
            "coefficients": _floats(stage.coefficients.toArray()),
            "intercept": float(stage.intercept),
            "threshold": float(stage.getThreshold()),
        }
    name = type(stage).__name__
    msg = (
        f"coefficients export is not supported for this estimator or stage ({name}); "
        "it covers imputer, string indexer, one-hot, assembler, scaler and logistic regression: "
        "use --format pmml or --format onnx for tree models"
    )
    raise ModelError(msg)


def build_card(entry: ModelVersion, model: PipelineModel) -> dict[str, Any]:
    """The card of a registry version (its spec, version and every stage's parameters)."""
    kind = str(entry.metadata.get("estimator", {}).get("kind", ""))
    if kind and kind != "logistic":
        msg = (
            f"coefficients export is not supported for this estimator ({kind}, v{entry.version}); "
            "it needs logistic regression: use --format pmml or --format onnx"
        )
        raise ModelError(msg)
    return {
        "format": CARD_FORMAT,
        "model_version": entry.version,
        "spark_version": entry.metadata.get("spark_version"),
        "feature_spec": entry.metadata["feature_spec"],
        "stages": [_stage_card(stage) for stage in model.stages],
    }
