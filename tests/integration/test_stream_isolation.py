"""The scorer's last line of defence on the real broker: a record that passes validation but
makes the model throw is isolated and dead-lettered PROCESSING_ERROR, the rest of its batch is
published and the query goes on; a failure that is not the data's is retried, then stops."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from streamkit import EVENT_TIME, clone_version, headers, read, running, wait_for

from scorestream.contract.reasons import PROCESSING_ERROR
from scorestream.contract.synthetic import iter_events
from scorestream.errors import ScorestreamError
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.encoding import encode_json
from scorestream.producers.publisher import Publisher
from scorestream.streaming.job import Scorer
from scorestream.streaming.settings import ScorerSettings

# A feature-engineering stage with a real bug: it rounds amounts to micro-units through a
# 64-bit integer, which overflows from 9.2e12 on, and under ANSI mode (Spark's default) the cast
# throws. Its output is the `amount` the model reads: a stage whose output nothing reads is
# pruned from the plan and never runs.
OVERFLOWING_STAGE = (
    "SELECT * EXCEPT (amount), CAST(CAST(amount * 1000000 AS BIGINT) AS DOUBLE) / 1000000 "
    "AS amount FROM __THIS__"
)


def _registry_with_failing_model(spark: Any, trained: Registry, root: Path) -> Registry:
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    registry = Registry(shutil.copytree(trained.root, root))
    v1 = registry.resolve("champion")
    buggy = clone_version(registry, v1)
    _, model = registry.load(v1)
    target = registry.versions_dir / f"v{buggy}" / "model"
    shutil.rmtree(target)
    PipelineModel([SQLTransformer(statement=OVERFLOWING_STAGE), *model.stages]).save(str(target))
    registry.promote(buggy, reason="test: a stage that overflows on large amounts")
    return registry


def test_records_that_make_the_model_throw_are_dead_lettered_and_the_rest_scored(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    registry = _registry_with_failing_model(spark, trained_registry, tmp_path / "registry")
    good = []
    for i, event in enumerate(iter_events(120, seed=77)):
        event["event_time"] = EVENT_TIME + i
        good.append(event)
    # Valid by the feature spec (amount >= 0, no upper bound), fatal to the stage.
    culprits = [{**good[i], "event_id": f"culprit-{i}", "amount": 1e13} for i in (3, 100)]
    invalid = {**good[5], "event_id": "negative", "amount": -1.0}  # an ordinary dead letter
    records = [*good, *culprits, invalid]
    random.Random(3).shuffle(records)
    source, output = topic_factory("iso-in", partitions=2), topic_factory("iso-out")
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=registry.root,
        checkpoint=tmp_path / "checkpoint",
        max_offsets_per_trigger=70,  # two batches or more
    )
    with running(spark, kafka, settings) as scorer, Publisher(kafka) as pub:
        for event in records:
            pub.send(source, encode_json(event), key=event["event_id"].encode())
        pub.flush()
        wait_for(scorer, len(records), timeout_s=300)
        assert scorer.query is not None and scorer.query.isActive
        scores = read(kafka, output, len(good), timeout_s=60)
        dead = read(kafka, settings.topics.dead_letter, 3, timeout_s=60)

    t = scorer.totals
    assert (t.records_in, t.scored, t.dead_lettered) == (len(records), len(good), 3)
    assert scorer.isolated == 2
    # Every good record once (a failed attempt may have written some before it failed).
    assert {json.loads(m.value())["event_id"] for m in scores} == {e["event_id"] for e in good}
    reasons = Counter(headers(m)["scorestream.error.reason"] for m in dead)
    assert reasons == Counter({PROCESSING_ERROR: 2, "OUT_OF_RANGE": 1})
    for m in dead:
        h = headers(m)
        if h["scorestream.error.reason"] == PROCESSING_ERROR:
            assert m.key().decode().startswith("culprit-")
            assert json.loads(m.value())["amount"] == 1e13  # the original bytes
            assert "CAST_OVERFLOW" in h["scorestream.error.message"], h
            assert h["scorestream.error.message"].startswith("processing failed: org.apache")


def test_a_failure_not_in_the_data_is_retried_then_stops_with_its_message(
    spark: Any, kafka: KafkaSettings, trained_registry: Registry, tmp_path: Path
) -> None:
    """A broker timeout on every attempt: bounded retries with backoff, no isolation, then
    the scorer stops naming the failure."""
    settings = ScorerSettings(
        registry=trained_registry.root,
        checkpoint=tmp_path / "checkpoint",
        batch_retries=2,
        retry_backoff_s=0.01,
    )
    scorer = Scorer(spark, kafka, settings)
    attempts: list[int] = []

    def broker_down(*_args: Any) -> Any:
        attempts.append(1)
        msg = "org.apache.kafka.common.errors.TimeoutException: Topic scores not present"
        raise RuntimeError(msg)

    def no_isolation(*_args: Any) -> Any:
        raise AssertionError("a broker failure must not be bisected")

    scorer._write = broker_down  # type: ignore[method-assign]
    scorer._isolate = no_isolation  # type: ignore[method-assign]
    batch = spark.createDataFrame(
        [(b"k", b"{}", "t", 0, 0)],
        "key binary, value binary, topic string, partition int, offset long",
    )
    with pytest.raises(ScorestreamError) as info:
        scorer._write_resilient(batch, 7, None, 0.0, None)  # type: ignore[arg-type]
    assert len(attempts) == 3
    assert scorer.batch_retries == 2
    text = str(info.value)
    assert "batch 7 failed 3 times" in text
    assert "org.apache.kafka.common.errors.TimeoutException: Topic scores not present" in text
