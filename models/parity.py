"""Which route scores a version: its compiled expressions, when they match the PipelineModel on a
probe sample, or the PipelineModel itself.

The registry version stays the source of truth: the compiled form is derived from it at load
and used only after it agrees with `PipelineModel.transform` to 1e-12 on rows generated from
the version's own spec and fitted values (surrogates, split points, every label, an unseen
label, nulls and NaN).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError, ModelError
from scorestream.models.compile import CompiledModel, NotCompilable, compile_pipeline

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

COMPILE_MODES = ("auto", "on", "off")
TOLERANCE = 1e-12
PROBE_ROWS = 1000
UNSEEN = "__scorestream_unseen__"
# Measured with Spark 4.1.1: a random forest of 10 trees of depth 5 (699 CASE expressions in
# its score) is generated as code and scores as fast as its PipelineModel; one of 50 trees
# (3,438) and a GBT of 100 (5,193) are not, and evaluated row by row they score 1.5-2.3x
# slower. Between this bound and 699 the probe finds out (see _generated).
MAX_CONDITIONS = 3000


def check_mode(mode: str) -> None:
    if mode not in COMPILE_MODES:
        msg = f"unknown --compiled mode {mode!r}; expected one of {', '.join(COMPILE_MODES)}"
        raise ConfigError(msg)


@dataclass(frozen=True)
class Route:
    """How a version is scored: `compiled` (None: by its PipelineModel) and why."""

    version: int
    compiled: CompiledModel | None
    reason: str

    @property
    def name(self) -> str:
        return "compiled" if self.compiled is not None else "pipeline"


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff: float
    prediction_mismatches: int

    @property
    def holds(self) -> bool:
        return self.max_abs_diff <= TOLERANCE and self.prediction_mismatches == 0


def probe_frame(spark: SparkSession, compiled: CompiledModel, rows: int, seed: int) -> DataFrame:
    """Rows in the spec's feature types that visit every branch the compiled form has."""
    import json

    import numpy as np
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

    spec = compiled.spec
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for name in spec.numeric_names:
        probes = np.array(compiled.probes.get(name, ()) or (1.0,), dtype=float)
        base = rng.choice(probes, size=rows)
        jitter = base * rng.lognormal(0.0, 1.0, size=rows) + rng.normal(0.0, 1.0, size=rows)
        pick = rng.random(rows)
        values: list[Any] = np.where(pick < 0.3, base, jitter).tolist()
        for i in np.flatnonzero(pick > 0.92):
            values[i] = None if pick[i] > 0.96 else float("nan")
        columns[name] = values
    for name in spec.categorical:
        labels = [*compiled.labels.get(name, ()), UNSEEN, None]
        columns[name] = [labels[i] for i in rng.integers(0, len(labels), size=rows)]
    schema = StructType(
        [StructField(n, DoubleType()) for n in spec.numeric_names]
        + [StructField(c, StringType()) for c in spec.categorical]
    )
    names = spec.feature_names
    # One JSON literal parsed in the JVM, not `createDataFrame` of Python rows: that runs a
    # Python worker on an executor, and a cluster's executors need none to score.
    text = json.dumps([{n: columns[n][i] for n in names} for i in range(rows)], allow_nan=True)
    parsed = F.from_json(F.lit(text), ArrayType(schema), {"allowNonNumericNumbers": "true"})
    return spark.range(1).select(F.inline(parsed)).select(*names)


def check_parity(model: PipelineModel, compiled: CompiledModel, frame: DataFrame) -> Parity:
    """Largest |compiled - PipelineModel| probability and prediction mismatches on `frame`."""
    from pyspark.sql import functions as F

    from scorestream.models.evaluate import score_column

    score, prediction = compiled.columns()
    both = model.transform(frame).select(
        score_column().alias("a"),
        F.col("prediction").cast("double").alias("pa"),
        score.alias("b"),
        prediction.alias("pb"),
    )
    row = both.agg(
        F.count("*").alias("n"),
        F.max(F.abs(F.col("a") - F.col("b"))).alias("diff"),
        F.sum((F.col("pa") != F.col("pb")).cast("int")).alias("bad"),
        F.sum((F.col("b").isNull() | F.isnan("b")).cast("int")).alias("nulls"),
    ).first()
    assert row is not None
    worst = float(row["diff"]) if row["diff"] is not None else float("inf")
    if row["nulls"]:
        worst = float("inf")
    return Parity(int(row["n"]), worst, int(row["bad"] or 0))


def choose_route(
    spark: SparkSession, model: PipelineModel, spec: FeatureSpec, version: int, mode: str
) -> Route:
    """The route for one version under `mode` (auto: compiled when parity holds; on: compiled
    or ModelError; off: the PipelineModel)."""
    check_mode(mode)
    if mode == "off":
        return Route(version, None, "compiled scoring is off (--compiled off)")
    try:
        compiled = compile_pipeline(model, spec)
        _small_enough(compiled)
        # Spark's own fallback is off for the probe (in a session of its own): an expression
        # too large for its code generator (a forest of many deep trees) would be evaluated
        # row by row, several times slower than the PipelineModel, so it is refused here.
        probe = spark.newSession()
        probe.conf.set("spark.sql.codegen.fallback", "false")
        frame = probe_frame(probe, compiled, PROBE_ROWS, version)
        parity = _generated(lambda: check_parity(model, compiled, frame), compiled)
    except NotCompilable as exc:
        reason = f"not compiled: {exc}"
        if exc.__cause__ is not None:
            reason += f" ({exc.__cause__})"
        return _fallback(version, mode, reason)
    if not parity.holds:
        reason = (
            f"compiled form disagrees with the PipelineModel on {parity.rows} probe rows "
            f"(max |diff| {parity.max_abs_diff:.3g}, {parity.prediction_mismatches} "
            f"predictions differ; tolerance {TOLERANCE:g})"
        )
        return _fallback(version, mode, reason)
    reason = (
        f"compiled {compiled.estimator}: max |diff| {parity.max_abs_diff:.3g} "
        f"on {parity.rows} probe rows"
    )
    log.info("v%d is scored by compiled expressions (%s)", version, reason)
    return Route(version, compiled, reason)


def conditions(compiled: CompiledModel) -> int:
    """The CASE expressions in the compiled score: what MAX_CONDITIONS bounds."""
    return compiled.sql("spark")[0].count("CASE ")


def _small_enough(compiled: CompiledModel) -> None:
    """Refuses, without trying, a compiled form far beyond what Spark's code generator takes
    (trying costs 7-18 s a load; see MAX_CONDITIONS)."""
    count = conditions(compiled)
    if count > MAX_CONDITIONS:
        msg = (
            f"the compiled {compiled.estimator} has {count:,} CASE expressions, more than "
            f"Spark's code generator takes ({MAX_CONDITIONS:,} here)"
        )
        raise NotCompilable(msg)


def _generated(check: Callable[[], Parity], compiled: CompiledModel) -> Parity:
    """`check()`, with a failure of Spark's code generator turned into NotCompilable."""
    try:
        return check()
    except Exception as exc:
        text = str(exc)
        if "CompileException" not in text and "Failed to compile" not in text:
            raise
        msg = (
            f"Spark cannot generate code for the compiled {compiled.estimator} "
            "(too large for its code generator; scoring it row by row would be slower than "
            "the PipelineModel)"
        )
        raise NotCompilable(msg) from None


def _fallback(version: int, mode: str, reason: str) -> Route:
    if mode == "on":
        msg = f"v{version} cannot be scored compiled (--compiled on): {reason}"
        raise ModelError(msg)
    log.warning("v%d is scored by its PipelineModel: %s", version, reason)
    return Route(version, None, reason)
