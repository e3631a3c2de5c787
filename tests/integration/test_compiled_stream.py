"""On the real broker, the scorer with --compiled on publishes the PipelineModel's scores and
predictions (to 1e-12) for every estimator we train."""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamkit import EVENT_TIME, read, running

from scorestream.contract.synthetic import SPEC, iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.evaluate import score_column
from scorestream.models.pipeline import ESTIMATORS
from scorestream.models.registry import Registry
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.streaming.settings import ScorerSettings

EVENTS = 400


def _events() -> list[dict[str, Any]]:
    events = []
    for i, event in enumerate(iter_events(EVENTS, seed=99)):
        event["event_time"] = EVENT_TIME + i
        if i % 10 == 1:
            event["merchant_category"] = "space_tourism"  # unseen: the "keep" slot
        if i % 10 == 2:
            event.pop("country")  # missing category
        if i % 10 == 3:
            event["amount"] = None  # imputed
        if i % 10 == 4:
            event.pop("distance_from_home_km")
        events.append(event)
    return events


def _pipeline_scores(spark: Any, model: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    schema = StructType(
        [StructField("event_id", StringType())]
        + [StructField(n, DoubleType()) for n in SPEC.numeric_names]
        + [StructField(n, StringType()) for n in SPEC.categorical]
    )
    rows = [tuple(e.get(f.name) for f in schema.fields) for e in events]
    scored = model.transform(spark.createDataFrame(rows, schema))
    out = scored.select("event_id", score_column().alias("score"), F.col("prediction"))
    return {r["event_id"]: (r["score"], r["prediction"]) for r in out.collect()}


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_compiled_stream_scores_equal_pipeline_model(
    spark: Any,
    kafka: KafkaSettings,
    estimator_registry: tuple[Registry, dict[str, int]],
    topic_factory: Any,
    checkpoint: Any,
    kind: str,
) -> None:
    registry, versions = estimator_registry
    events = _events()
    source, output = topic_factory("features", partitions=2), topic_factory("scores")
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=registry.root,
        model=f"v{versions[kind]}",
        checkpoint=checkpoint,
        compiled="on",
    )
    with running(spark, kafka, settings) as scorer:
        assert scorer.holder.route.name == "compiled", scorer.holder.route.reason
        assert publish(kafka, ProduceSettings(topic=source), events=events) == EVENTS
        messages = read(kafka, output, EVENTS, timeout_s=180)
    records = [json.loads(m.value()) for m in messages]
    assert len(records) == EVENTS
    assert scorer.totals.scored == EVENTS and scorer.totals.dead_lettered == 0

    _, model = registry.load(versions[kind])
    expected = _pipeline_scores(spark, model, events)
    worst = 0.0
    for record in records:
        score, prediction = expected[record["event_id"]]
        worst = max(worst, abs(record["score"] - score))
        assert record["prediction"] == prediction, record
        assert record["model_version"] == versions[kind]
    assert worst <= 1e-12, f"{kind}: largest score difference {worst}"
    assert len({round(r["score"], 6) for r in records}) > 20
