"""Retraining from the champion: same feature spec and estimator settings, new data, published as
`challenger` with its lineage (data window, row counts, parent version) in the metadata.

The newest events are the held-out slice (the model is meant for the events to come, so it is
judged on the latest ones, not on a random sample of the past), and the champion is scored on
the same slice: both sets of figures go into the lineage. Promotion is not decided here: the
running scorer shadows the challenger and the label feedback promotes it when it proves better
(docs/operations.md, "Retraining").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorestream.errors import DataError, ModelError
from scorestream.models.evaluate import evaluate
from scorestream.models.pipeline import EstimatorSettings
from scorestream.models.registry import ModelVersion, Registry
from scorestream.models.scoring import score
from scorestream.models.train import TrainSettings, train

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from scorestream.models.source import ModelEntry

# The figures of the held-out slice that go into the lineage (the calibration table does not).
FIGURES = ("rows", "roc_auc", "pr_auc", "log_loss", "brier", "positive_rate")


@dataclass(frozen=True)
class RetrainSettings:
    """Which version to start from and how much data a retraining needs."""

    registry: Path
    base: str = "champion"  # the parent: its spec and estimator settings are reused
    min_rows: int = 500  # labelled events below which no model is trained
    alias: str = "challenger"

    def __post_init__(self) -> None:
        if self.min_rows < 2:
            msg = f"retraining needs min_rows >= 2, got {self.min_rows}"
            raise DataError(msg)


def estimator_of(entry: ModelVersion) -> EstimatorSettings:
    """The estimator settings a version was trained with (from its metadata)."""
    recorded = dict(entry.metadata.get("estimator") or {})
    if "kind" not in recorded:
        msg = f"{entry.path}/metadata.json records no estimator: cannot retrain v{entry.version}"
        raise ModelError(msg)
    known = set(EstimatorSettings.__dataclass_fields__)
    unknown = sorted(set(recorded) - known)
    if unknown:
        msg = (
            f"{entry.path}/metadata.json: estimator settings {unknown} are unknown to this "
            f"scorestream (expected some of {sorted(known)})"
        )
        raise ModelError(msg)
    return EstimatorSettings(**recorded)


def split_newest(
    frame: DataFrame, time_column: str, fraction: float
) -> tuple[DataFrame, DataFrame]:
    """(older rows, the newest `fraction` of rows by `time_column`): the held-out slice."""
    from pyspark.sql import functions as F

    stamp = F.unix_micros(F.col(time_column).cast("timestamp"))
    cut = frame.select(stamp.alias("t")).approxQuantile("t", [1.0 - fraction], 0.0)
    if not cut:
        msg = f"the training set has no {time_column!r} values to hold out the newest events by"
        raise DataError(msg)
    newest = stamp > F.lit(cut[0])
    return frame.where(~newest), frame.where(newest)


def _check_classes(older: DataFrame, newest: DataFrame, label: str, total: int) -> None:
    """Both slices hold both classes (one Spark job for the two)."""
    from pyspark.sql import functions as F

    both = older.withColumn("__slice", F.lit("training")).unionByName(
        newest.withColumn("__slice", F.lit("held-out"))
    )
    found: dict[str, dict[float, int]] = {"training": {}, "held-out": {}}
    for row in both.groupBy("__slice", label).count().collect():
        found[row[0]][float(row[1])] = int(row[2])
    for name, classes in found.items():
        if set(classes) != {0.0, 1.0}:
            msg = (
                f"the {name} slice of the {total} labelled events holds only the classes "
                f"{classes} of {label!r}; expected both 0 and 1: widen the data window"
            )
            raise DataError(msg)


def fingerprint(lineage: Mapping[str, Any]) -> str:
    """A digest of the data window (topics and offsets, or the file): same window, same digest."""
    data = {k: lineage[k] for k in ("source", "labels", "features") if k in lineage}
    text = json.dumps(data, sort_keys=True, default=str)
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def retrain(
    spark: SparkSession,
    frame: DataFrame,
    settings: RetrainSettings,
    lineage: Mapping[str, Any],
    progress: Callable[[str], None] = lambda _m: None,
) -> ModelEntry:
    """Train on `frame` (labelled rows: the parent's features, label and event time) with the
    parent's settings, evaluate both on the newest slice, publish and point `alias` at it."""
    registry = Registry(settings.registry)
    parent = registry.get(registry.resolve(settings.base))
    spec = parent.spec
    recorded = parent.metadata.get("training") or {}
    fraction = float(recorded.get("validation_fraction", 0.2))
    seed = int(recorded.get("seed", 42))
    frame = frame.cache()
    try:
        total = frame.count()
        if total < settings.min_rows:
            msg = (
                f"the training set holds {total} labelled events, fewer than the minimum of "
                f"{settings.min_rows}: widen the data window (--since, --last) or lower --min-rows"
            )
            raise DataError(msg)
        if spec.event_time in frame.columns:
            older, newest = split_newest(frame, spec.event_time, fraction)
        else:  # a landing file without event times: a seeded random slice
            older, newest = frame.randomSplit([1 - fraction, fraction], seed=seed)
        _check_classes(older, newest, spec.label, total)
        progress(f"scoring the parent v{parent.version} on the held-out slice ...")
        _, parent_model = registry.load(parent.version)
        parent_figures = evaluate(score(newest, parent_model, parent.version), spec.label)
        extra = {
            "lineage": {
                **lineage,
                "parent_version": parent.version,
                "rows": total,
                "holdout": {
                    "rule": "newest" if spec.event_time in frame.columns else "seeded random",
                    "fraction": fraction,
                    "parent": {k: parent_figures[k] for k in FIGURES},
                },
            }
        }
        entry = train(
            spark,
            older,
            spec,
            TrainSettings(
                registry=registry.root,
                estimator=estimator_of(parent),
                validation_fraction=fraction,
                seed=seed,
                promote=False,
            ),
            fingerprint=fingerprint(lineage),
            source=str(lineage.get("source", "retrain")),
            progress=progress,
            holdout=newest,
            extra=extra,
        )
    finally:
        frame.unpersist()
    mine, theirs = entry.metadata["metrics"], parent_figures
    reason = (
        f"retrained from v{parent.version} on {total} labelled events "
        f"({lineage.get('trigger', 'on demand')}); held-out {mine['rows']} newest: log loss "
        f"{mine['log_loss']:.4f} vs parent {theirs['log_loss']:.4f}, ROC AUC "
        f"{mine['roc_auc']:.4f} vs {theirs['roc_auc']:.4f}"
    )
    registry.promote(entry.version, settings.alias, reason=reason)
    progress(f"{settings.alias} -> v{entry.version}: {reason}")
    return entry
