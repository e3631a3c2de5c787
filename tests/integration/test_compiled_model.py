"""The compiled model equals PipelineModel.transform to 1e-12 for every estimator we train, and
a stage the compiler does not know falls back to the PipelineModel with its reason."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fixtures_estimators import feature_frame, hard_rows

from scorestream.contract.synthetic import SPEC
from scorestream.errors import ModelError
from scorestream.models.compile import compile_pipeline
from scorestream.models.evaluate import score_column
from scorestream.models.parity import choose_route
from scorestream.models.pipeline import ESTIMATORS
from scorestream.models.registry import Registry
from scorestream.streaming.scoring import ScoringPlan
from scorestream.streaming.validate import ValidationSettings

ROWS = 2000


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_compiled_scores_equal_pipeline_transform(
    spark: Any, estimator_registry: tuple[Registry, dict[str, int]], kind: str
) -> None:
    from pyspark.sql import functions as F

    registry, versions = estimator_registry
    entry, model = registry.load(versions[kind])
    route = choose_route(spark, model, entry.spec, entry.version, "auto")
    assert route.name == "compiled", route.reason
    assert route.compiled is not None and route.compiled.estimator == kind
    score, prediction = route.compiled.columns()
    frame = feature_frame(spark, hard_rows(ROWS, seed=5))
    rows = (
        model.transform(frame)
        .select(
            score_column().alias("spark"),
            F.col("prediction").alias("spark_prediction"),
            score.alias("compiled"),
            prediction.alias("compiled_prediction"),
        )
        .collect()
    )
    assert len(rows) == ROWS
    worst = max(abs(r["spark"] - r["compiled"]) for r in rows)
    assert worst <= 1e-12, f"{kind}: largest difference {worst}"
    assert all(r["spark_prediction"] == r["compiled_prediction"] for r in rows)
    # the scores really vary (a constant would not pass); the forest's votes stay under 0.5
    assert len({round(r["spark"], 6) for r in rows}) > 20
    if kind != "random_forest":
        assert {r["compiled_prediction"] for r in rows} == {0.0, 1.0}


def test_compiled_plan_has_no_ml_functions_and_no_operator_of_its_own(
    spark: Any, estimator_registry: tuple[Registry, dict[str, int]]
) -> None:
    """Kafka rows -> decode -> validate -> score -> Kafka rows: no UDF, no vector, no operator
    of its own."""
    import datetime as dt
    import json

    from scorestream.streaming.scoring import OutputFormat, Topics

    registry, versions = estimator_registry
    entry, model = registry.load(versions["gbt"])
    route = choose_route(spark, model, entry.spec, entry.version, "on")
    event = {"event_id": "e1", "event_time": 1_700_000_000_000, "amount": 12.5}
    raw = spark.createDataFrame(
        [(b"e1", json.dumps(event).encode(), "t", 0, 0, dt.datetime.now(dt.UTC), 0)],
        "key binary, value binary, topic string, partition int, offset long, "
        "timestamp timestamp, timestampType int",
    )
    plan = ScoringPlan(
        raw, model, entry.version, entry.spec, ValidationSettings(), compiled=route.compiled
    )
    out = plan.kafka(plan.scored(raw), Topics("scores", "dlq"), OutputFormat())

    def executed(frame: Any) -> list[str]:
        return str(frame._jdf.queryExecution().executedPlan().toString()).strip().splitlines()

    lines = executed(out)
    assert not any("UDF" in line or "vector" in line.lower() for line in lines), lines
    # the score is plain expressions inside the projections validation already has: compiled
    # scoring adds no operator (the PipelineModel adds its stages' UDF projections)
    assert len(executed(plan.scored(raw))) == len(executed(plan.validated(raw)))
    assert any(" AS score#" in line and "Project" in line for line in lines), lines
    row = out.collect()[0]
    assert row["topic"] == "scores"
    assert 0.0 < json.loads(row["value"])["score"] < 1.0


def test_uncompilable_stage_falls_back_with_the_reason(
    spark: Any,
    estimator_registry: tuple[Registry, dict[str, int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    registry, versions = estimator_registry
    entry, model = registry.load(versions["logistic"])
    extra = SQLTransformer(statement="SELECT * FROM __THIS__")
    odd = PipelineModel(stages=[extra, *model.stages])
    with caplog.at_level(logging.WARNING, logger="scorestream.models.parity"):
        route = choose_route(spark, odd, entry.spec, 99, "auto")
    assert route.compiled is None and route.name == "pipeline"
    assert "SQLTransformer" in route.reason, route.reason
    assert any(
        "v99 is scored by its PipelineModel" in m and "SQLTransformer" in m for m in caplog.messages
    ), caplog.messages
    with pytest.raises(ModelError, match=r"v99 cannot be scored compiled .*SQLTransformer"):
        choose_route(spark, odd, entry.spec, 99, "on")
    off = choose_route(spark, model, entry.spec, entry.version, "off")
    assert off.compiled is None and "off" in off.reason


def test_compiled_form_reads_only_the_feature_columns(
    estimator_registry: tuple[Registry, dict[str, int]],
) -> None:
    registry, versions = estimator_registry
    _, model = registry.load(versions["random_forest"])
    compiled = compile_pipeline(model, SPEC)
    text = " ".join(compiled.sql("spark"))
    quoted = {part.split("`")[0] for part in text.split("`")[1::2]}
    assert quoted <= set(SPEC.feature_names), quoted


def test_a_compiled_form_too_large_for_code_generation_falls_back(
    spark: Any,
    estimator_registry: tuple[Registry, dict[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A forest whose compiled form has more CASE expressions than the bound is scored by its
    PipelineModel under `auto` and refused under `on`; under the bound it is compiled."""
    from scorestream.models import parity

    registry, versions = estimator_registry
    entry, model = registry.load(versions["random_forest"])
    small = choose_route(spark, model, entry.spec, entry.version, "auto")
    assert small.compiled is not None, small.reason
    conditions = parity.conditions(small.compiled)
    monkeypatch.setattr(parity, "MAX_CONDITIONS", conditions - 1)
    route = choose_route(spark, model, entry.spec, entry.version, "auto")
    assert route.compiled is None
    assert f"has {conditions:,} CASE expressions, more than" in route.reason, route.reason
    with pytest.raises(ModelError, match="CASE expressions, more than"):
        choose_route(spark, model, entry.spec, entry.version, "on")
    # The probe's session of its own leaves the caller's code-generation fallback as it was.
    assert spark.conf.get("spark.sql.codegen.fallback") == "true"
