"""Evaluation of a fitted model on held-out rows: ROC AUC, PR AUC, log loss, Brier, calibration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

EPS = 1e-15


def score_column() -> Any:
    """The probability of the positive class as a double column."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    return F.element_at(vector_to_array(F.col("probability")), 2)


def evaluate(scored: DataFrame, label: str, bins: int = 10) -> dict[str, Any]:
    """Metrics of scored rows (models.scoring.score: with `score`) against their label column.

    The areas are ranked by the score itself: the probability orders rows as the raw margin
    does, so they equal Spark's figures from `rawPrediction`."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F

    frame = scored.select(F.col(label).cast("double").alias("y"), F.col("score").alias("p"))
    frame = frame.cache()
    try:
        roc = BinaryClassificationEvaluator(
            labelCol="y", rawPredictionCol="p", metricName="areaUnderROC"
        ).evaluate(frame)
        pr = BinaryClassificationEvaluator(
            labelCol="y", rawPredictionCol="p", metricName="areaUnderPR"
        ).evaluate(frame)
        clipped = F.least(F.greatest(F.col("p"), F.lit(EPS)), F.lit(1 - EPS))
        agg = frame.agg(
            F.count("*").alias("n"),
            F.avg(-(F.col("y") * F.log(clipped) + (1 - F.col("y")) * F.log(1 - clipped))).alias(
                "ll"
            ),
            F.avg((F.col("p") - F.col("y")) ** 2).alias("brier"),
            F.avg("y").alias("positive_rate"),
        ).first()
        bucket = F.least(F.floor(F.col("p") * bins), F.lit(bins - 1)).cast("int")
        rows = (
            frame.groupBy(bucket.alias("bin"))
            .agg(
                F.count("*").alias("n"),
                F.avg("p").alias("mean_score"),
                F.avg("y").alias("observed_rate"),
            )
            .orderBy("bin")
            .collect()
        )
    finally:
        frame.unpersist()
    assert agg is not None
    calibration = [
        {
            "bin": int(r["bin"]),
            "lower": r["bin"] / bins,
            "upper": (r["bin"] + 1) / bins,
            "n": int(r["n"]),
            "mean_score": float(r["mean_score"]),
            "observed_rate": float(r["observed_rate"]),
        }
        for r in rows
    ]
    return {
        "rows": int(agg["n"]),
        "roc_auc": float(roc),
        "pr_auc": float(pr),
        "log_loss": float(agg["ll"]),
        "brier": float(agg["brier"]),
        "positive_rate": float(agg["positive_rate"]),
        "calibration": calibration,
    }


def format_metrics(metrics: dict[str, Any]) -> str:
    """The metrics and the calibration table as aligned text."""
    lines = [
        f"  rows {metrics['rows']}   positive rate {metrics['positive_rate']:.4f}",
        f"  ROC AUC {metrics['roc_auc']:.4f}   PR AUC {metrics['pr_auc']:.4f}   "
        f"log loss {metrics['log_loss']:.4f}   Brier {metrics['brier']:.4f}",
        "  calibration:  bin          n   mean score   observed",
    ]
    for row in metrics["calibration"]:
        lines.append(
            f"                [{row['lower']:.1f},{row['upper']:.1f}) {row['n']:>8} "
            f"  {row['mean_score']:>10.4f}   {row['observed_rate']:>8.4f}"
        )
    return "\n".join(lines)
