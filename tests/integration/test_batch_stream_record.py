"""Batch scoring and the stream's scoring give the same score record, field for field: the same
names and types (schemas/score.avsc) and the same values, `scored_at` being when each row was
scored in both."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from scorestream.avro import SCORE_SCHEMA, read_schema
from scorestream.contract.synthetic import SPEC, iter_events
from scorestream.models.batch import BatchSettings, batch_score
from scorestream.models.parity import choose_route
from scorestream.models.registry import Registry
from scorestream.streaming.scoring import OutputFormat, ScoringPlan, Topics
from scorestream.streaming.source import kafka_row_schema
from scorestream.streaming.validate import ValidationSettings

ROWS = 300
EVENT_TIME = 1_760_000_000_000


def _events() -> list[dict[str, Any]]:
    events = []
    for i, event in enumerate(iter_events(ROWS, seed=77)):
        event["event_time"] = EVENT_TIME + 1000 * i
        events.append(event)
    events[0]["merchant_category"] = "space_tourism"  # unseen in training
    events[1]["amount"] = None  # imputed
    events[2].pop("country")  # missing categorical
    return events


def _kafka_rows(spark: Any, events: list[dict[str, Any]]) -> Any:
    rows = [(None, json.dumps(e).encode(), "in", 0, i, None, 0) for i, e in enumerate(events)]
    return spark.createDataFrame(rows, kafka_row_schema())


def _batch_file(spark: Any, events: list[dict[str, Any]], path: Path) -> None:
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

    schema = StructType(
        [StructField("event_id", StringType()), StructField("event_time", TimestampType())]
        + [StructField(n, DoubleType()) for n in SPEC.numeric_names]
        + [StructField(c, StringType()) for c in SPEC.categorical]
    )
    rows = [
        (
            e["event_id"],
            dt.datetime.fromtimestamp(e["event_time"] / 1000, dt.UTC),
            *[e.get(n) for n in SPEC.numeric_names],
            *[e.get(c) for c in SPEC.categorical],
        )
        for e in events
    ]
    spark.createDataFrame(rows, schema).write.parquet(str(path))


@pytest.mark.parametrize("compiled", [False, True], ids=["pipeline", "compiled"])
def test_batch_output_is_the_stream_record_field_for_field(
    spark: Any, trained_registry: Registry, tmp_path: Path, compiled: bool
) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    events = _events()
    entry, model = trained_registry.load("champion")
    route = choose_route(spark, model, entry.spec, entry.version, "on") if compiled else None
    started = dt.datetime.now(dt.UTC)

    # The stream's path: Kafka rows -> decode, validate, score -> the Avro score record.
    raw = _kafka_rows(spark, events)
    plan = ScoringPlan(
        raw,
        model,
        entry.version,
        entry.spec,
        ValidationSettings(),
        compiled=None if route is None else route.compiled,
    )
    sink = plan.kafka(plan.scored(raw), Topics("scores", "dlq"), OutputFormat(kind="avro"))
    assert sink.where(F.col("topic") != "scores").count() == 0, "a row was dead-lettered"
    schema = json.dumps(read_schema(SCORE_SCHEMA))
    stream = sink.select(from_avro(F.col("value"), schema).alias("r")).select("r.*")
    json_sink = plan.kafka(plan.scored(raw), Topics("scores", "dlq"), OutputFormat(kind="json"))
    json_records = [json.loads(r.value) for r in json_sink.select("value").collect()]

    # Batch: the same rows from a Parquet file through batch-score (PipelineModel only).
    _batch_file(spark, events, tmp_path / "events.parquet")
    settings = BatchSettings(input=str(tmp_path / "events.parquet"), output=str(tmp_path / "out"))
    result = batch_score(spark, trained_registry, settings)
    assert result["scored"] == ROWS
    batch = spark.read.parquet(str(tmp_path / "out"))

    # Field for field: the names, order and types of schemas/score.avsc in both.
    avsc = [f["name"] for f in read_schema(SCORE_SCHEMA)["fields"]]
    assert batch.columns == avsc
    assert stream.dtypes == batch.dtypes
    assert dict(batch.dtypes) == {
        "event_id": "string",
        "score": "double",
        "prediction": "double",
        "model_version": "int",
        "event_time": "timestamp",
        "scored_at": "timestamp",
    }
    assert all(list(r) == avsc for r in json_records)

    # Collected before the clock is read: the stream's rows are scored as they are collected.
    by_id = {r["event_id"]: r.asDict() for r in stream.collect()}
    from_batch = {r["event_id"]: r.asDict() for r in batch.collect()}
    ended = dt.datetime.now(dt.UTC)
    assert by_id.keys() == from_batch.keys() == {e["event_id"] for e in events}
    for event_id, s in by_id.items():
        b = from_batch[event_id]
        assert abs(s["score"] - b["score"]) <= 1e-12, event_id
        assert s["prediction"] == b["prediction"] in (0.0, 1.0)
        assert s["model_version"] == b["model_version"] == entry.version
        assert s["event_time"] == b["event_time"]
        # scored_at: the moment each row was scored, inside this test's run in both.
        for when in (s["scored_at"], b["scored_at"]):
            assert started - dt.timedelta(seconds=1) <= when.replace(tzinfo=dt.UTC) <= ended
    first = next(e for e in events if e["event_id"] in by_id)
    expected = dt.datetime.fromtimestamp(first["event_time"] / 1000, dt.UTC).replace(tzinfo=None)
    assert by_id[first["event_id"]]["event_time"] == expected
