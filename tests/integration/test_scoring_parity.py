"""Scores read from the output topic equal PipelineModel.transform of the same rows in batch."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
from streamkit import EVENT_TIME, read, running

from scorestream.contract.synthetic import SPEC, iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.evaluate import score_column
from scorestream.models.registry import Registry
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.streaming.settings import ScorerSettings


def _events(n: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i, event in enumerate(iter_events(n, seed=2024)):
        event["event_time"] = EVENT_TIME + i
        events.append(event)
    # Cases that must still score: a missing optional numeric (imputed), an unseen category,
    # and extreme but valid values.
    events[0].pop("distance_from_home_km")
    events[1]["merchant_category"] = "space_tourism"
    events[2]["country"] = "AQ"
    events[3]["amount"] = 1e9
    events[4]["amount"] = None
    return events


def _batch_scores(spark: Any, registry: Registry, events: list[dict[str, Any]]) -> pd.DataFrame:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    schema = StructType(
        [StructField("event_id", StringType())]
        + [StructField(n, DoubleType()) for n in SPEC.numeric_names]
        + [StructField(n, StringType()) for n in SPEC.categorical]
    )
    rows = [tuple(e.get(f.name) for f in schema.fields) for e in events]
    _, model = registry.load("champion")
    scored = model.transform(spark.createDataFrame(rows, schema))
    out = scored.select("event_id", score_column().alias("score"), F.col("prediction"))
    return out.toPandas().set_index("event_id")


def test_stream_scores_equal_batch_transform(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Any,
) -> None:
    events = _events(1_000)
    source, output = topic_factory("features", partitions=3), topic_factory("scores")
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=trained_registry.root,
        checkpoint=checkpoint,
    )
    with running(spark, kafka, settings) as scorer:
        published = publish(kafka, ProduceSettings(topic=source), events=events)
        assert published == len(events)
        messages = read(kafka, output, len(events), timeout_s=180)

    records = [json.loads(m.value()) for m in messages]
    # Count in == count out: every event scored exactly once, nothing dead-lettered.
    assert len(records) == len(events)
    assert {r["event_id"] for r in records} == {e["event_id"] for e in events}
    assert scorer.totals.records_in == len(events)
    assert scorer.totals.scored == len(events)
    assert scorer.totals.dead_lettered == 0

    expected = _batch_scores(spark, trained_registry, events)
    version = trained_registry.resolve("champion")
    worst = 0.0
    for record in records:
        want = expected.loc[record["event_id"]]
        worst = max(worst, abs(record["score"] - want["score"]))
        assert record["prediction"] == want["prediction"], record
        assert record["model_version"] == version
        assert record["event_time"].startswith("2026-01-01T00:00:")
        assert record["scored_at"] >= record["event_time"]
    assert worst <= 1e-9, f"largest score difference {worst}"
    # The batch side really differs between events (the test would not catch a constant).
    assert expected["score"].std() > 0.01
    # Keys are the event ids (downstream consumers join on them); headers name the source.
    for message, record in zip(messages, records, strict=True):
        assert message.key().decode() == record["event_id"]
        headers = dict(message.headers())
        assert int(headers["scorestream.source.partition"]) in range(3)
        assert int(headers["scorestream.source.offset"]) >= 0
        assert int(headers["scorestream.model.version"]) == version
    # kafka-python subscribers read the same records from the lz4-compressed output.
    assert _read_with_kafka_python(kafka, output, len(events)) == {
        r["event_id"]: r["score"] for r in records
    }


def _read_with_kafka_python(kafka: KafkaSettings, topic: str, count: int) -> dict[str, float]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=2_000,
    )
    scores: dict[str, float] = {}
    deadline = time.monotonic() + 60
    try:
        while len(scores) < count and time.monotonic() < deadline:
            for message in consumer:  # ends after 2 s without a message
                record = json.loads(message.value)
                scores[record["event_id"]] = record["score"]
                if len(scores) == count:
                    break
    finally:
        consumer.close()
    return scores
