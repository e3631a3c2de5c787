"""Start-up checks of the scorer: each misconfiguration fails fast with a message that says what
is wrong and what to do."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamkit import EVENT_TIME, free_port, running, wait_for

from scorestream.contract.synthetic import iter_events
from scorestream.errors import ConfigError, ModelError, StackError
from scorestream.kafka import KafkaSettings, topic_partitions
from scorestream.models.registry import Registry
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.streaming.job import Scorer
from scorestream.streaming.settings import ScorerSettings


def test_unreachable_broker_fails_after_a_bounded_retry_naming_the_address(
    spark: Any, trained_registry: Registry, checkpoint: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = ScorerSettings(
        registry=trained_registry.root, checkpoint=checkpoint, startup_timeout_s=3.0
    )
    scorer = Scorer(spark, KafkaSettings(bootstrap=address), settings)
    started = time.monotonic()
    with pytest.raises(StackError, match=f"Kafka at {address} did not answer within 3 s"):
        scorer.start()
    assert time.monotonic() - started < 20
    assert scorer.query is None


def test_missing_input_topic_is_refused_or_created_by_flag(
    spark: Any, kafka: KafkaSettings, trained_registry: Registry, checkpoint: Path
) -> None:
    source = f"absent-{time.time_ns()}"
    settings = ScorerSettings(
        input_topic=source,
        output_topic=f"{source}-out",
        registry=trained_registry.root,
        checkpoint=checkpoint,
        create_topics=False,
    )
    with pytest.raises(ConfigError, match=rf"topics \['{source}', .*\] do not exist on"):
        Scorer(spark, kafka, settings).start()
    assert topic_partitions(kafka, source) == 0
    created = ScorerSettings(**{**settings.__dict__, "create_topics": True})
    with running(spark, kafka, created):
        assert topic_partitions(kafka, source) == created.topic_partitions


def test_checkpoint_of_another_query_is_refused(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Path,
) -> None:
    first, other = topic_factory("ckpt-a"), topic_factory("ckpt-b")
    settings = ScorerSettings(
        input_topic=first,
        output_topic=topic_factory("ckpt-out"),
        registry=trained_registry.root,
        checkpoint=checkpoint,
    )
    events = [e | {"event_time": EVENT_TIME} for e in iter_events(20, seed=51)]
    with running(spark, kafka, settings) as scorer:
        publish(kafka, ProduceSettings(topic=first), events)
        wait_for(scorer, 20, timeout_s=60)
    moved = ScorerSettings(**{**settings.__dict__, "input_topic": other})
    with pytest.raises(ConfigError, match=r"belongs to another scoring query \(.*input_topic: "):
        Scorer(spark, kafka, moved).start()
    # Without our manifest, Spark's own offset log still tells the topics apart.
    (checkpoint / "scorestream.json").unlink()
    with pytest.raises(ConfigError, match=rf"holds offsets of topics \['{first}'\]"):
        Scorer(spark, kafka, moved).start()


def test_unknown_model_alias_is_named(
    spark: Any, kafka: KafkaSettings, trained_registry: Registry
) -> None:
    settings = ScorerSettings(registry=trained_registry.root, model="challenger")
    with pytest.raises(ModelError, match="alias 'challenger' is not set in registry"):
        Scorer(spark, kafka, settings)
