"""A model can never take the scorer down, on the real broker.

The scorer starts with a champion that cannot serve (its saved model is corrupt): it falls back
to the newest loadable version of the alias history and says so. Then, while 4,000 events are
scored in batches of 100, the champion alias is moved in turn to: an alias file that is not
JSON, a version that does not exist, a version whose metadata holds a bad feature spec, a version
whose field changed kind (a numeric feature declared categorical), and a version that loads but
fails when it scores rows (its StringIndexer edited to handleInvalid=error, so its output no
longer has the extra category its one-hot encoder was fitted with). Each must leave the serving
version serving, logged with its reason and counted; then a good version takes over at a batch
boundary, and every event is scored exactly once.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from streamkit import EVENT_TIME, clone_version, headers, read_quiet, wait_for

from scorestream.contract.synthetic import iter_events
from scorestream.errors import ModelError
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.monitoring.settings import MonitorSettings
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.streaming.job import Scorer
from scorestream.streaming.listeners import BatchStats
from scorestream.streaming.model_holder import ModelHolder
from scorestream.streaming.monitor import ScorerMonitor
from scorestream.streaming.settings import ScorerSettings

N = 4_000


def _corrupt_model(registry: Registry, version: int) -> None:
    """Garbage in the last stage's saved metadata: the folder layout is intact."""
    stages = sorted((registry.versions_dir / f"v{version}" / "model" / "stages").iterdir())
    for part in (stages[-1] / "metadata").glob("part-*"):
        part.write_text("{not json", encoding="utf-8")


def _strict_indexer(registry: Registry, version: int) -> None:
    """The StringIndexer refuses unseen categories (handleInvalid=error): the model still loads,
    but its one-hot encoder, fitted for one more category, fails on every row it scores."""
    stages = registry.versions_dir / f"v{version}" / "model" / "stages"
    (indexer,) = [d for d in stages.iterdir() if "StringIndexer" in d.name]
    for part in (indexer / "metadata").glob("part-*"):
        meta = json.loads(part.read_text(encoding="utf-8").splitlines()[0])
        meta["paramMap"]["handleInvalid"] = "error"
        part.write_text(json.dumps(meta) + "\n", encoding="utf-8")
    for crc in (indexer / "metadata").glob(".*.crc"):  # Hadoop would refuse the edited file
        crc.unlink()


class Steps:
    """A listener that moves the champion alias one step each time the previous step was
    refused (counted by the metric), so every bad target is seen before the next replaces it."""

    def __init__(self, failures: Callable[[], float], steps: list[Callable[[], None]]) -> None:
        self.failures = failures
        self.steps = steps
        self.done = 0
        self.base = failures()

    def on_batch(self, _scored: Any, _stats: BatchStats) -> None:
        if self.done < len(self.steps) and self.failures() >= self.base + self.done:
            self.steps[self.done]()
            self.done += 1


@pytest.mark.timeout(1500)
def test_bad_models_never_stop_the_scorer_and_the_old_version_keeps_serving(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scorestream.streaming.model_holder")
    registry = Registry(shutil.copytree(trained_registry.root, tmp_path / "registry"))
    v1 = registry.resolve("champion")
    spec = registry.get(v1).metadata["feature_spec"]
    broken = clone_version(registry, v1)
    _corrupt_model(registry, broken)
    registry.promote(broken, reason="test: a champion that cannot serve")
    bad_spec = clone_version(registry, v1, feature_spec={"numeric": [{"name": "amount"}]})
    amount_is_categorical = {
        **spec,
        "numeric": [f for f in spec["numeric"] if f["name"] != "amount"],
        "categorical": [*spec["categorical"], "amount"],
    }
    kind_changed = clone_version(registry, v1, feature_spec=amount_is_categorical)
    strict = clone_version(registry, v1)
    _strict_indexer(registry, strict)
    good = clone_version(registry, v1)
    alias_file = registry.aliases_dir / "champion.json"

    source, output = topic_factory("safe-in", partitions=2), topic_factory("safe-out")
    events = []
    for i, event in enumerate(iter_events(N, seed=1313)):
        event["event_time"] = EVENT_TIME + i
        events.append(event)
    assert publish(kafka, ProduceSettings(topic=source), events) == N

    metrics = ScorerMetrics(CollectorRegistry())
    failures = metrics.model_load_failures
    monitor = ScorerMonitor(spark, MonitorSettings(metrics_port=0, drift=False), metrics=metrics)
    steps = Steps(
        failures._value.get,
        [
            lambda: alias_file.write_text("{not json", encoding="utf-8"),
            lambda: alias_file.write_text(
                json.dumps({"alias": "champion", "version": 99, "history": [v1]}),
                encoding="utf-8",
            ),
            lambda: registry.promote(bad_spec, reason="test: bad feature spec"),
            lambda: registry.promote(kind_changed, reason="test: amount became categorical"),
            lambda: registry.promote(strict, reason="test: fails when it scores"),
            lambda: registry.promote(good, reason="test: a good version"),
        ],
    )
    scorer = Scorer(
        spark,
        kafka,
        ScorerSettings(
            input_topic=source,
            output_topic=output,
            registry=registry.root,
            checkpoint=tmp_path / "checkpoint",
            max_offsets_per_trigger=100,
        ),
        listeners=[monitor, steps],
    )
    # At start-up the corrupt champion was refused: the newest loadable version of its history.
    assert scorer.holder.version == v1 and scorer.holder.fallback is not None
    assert scorer.holder.fallback[0] == broken
    monitor.attach(scorer)
    assert failures._value.get() == 1
    steps.base = failures._value.get()
    scorer.start()
    try:
        scorer.wait_ready()
        wait_for(scorer, N, timeout_s=900)
        scorer.settle()
    finally:
        scorer.stop()
        monitor.close()
    assert steps.done == 6, f"only {steps.done} steps ran: the stream ended first"
    assert scorer.holder.version == good
    assert failures._value.get() == 6  # the start-up fallback and five refusals
    assert metrics.model_swaps._value.get() == 1

    scores = read_quiet(kafka, output, N, quiet_s=3.0, timeout_s=120)
    ids = Counter(json.loads(m.value())["event_id"] for m in scores)
    assert len(scores) == N and set(ids) == {e["event_id"] for e in events}
    assert scorer.totals.records_in == scorer.totals.scored == N
    by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for m in scores:
        h = headers(m)
        by_partition[int(h["scorestream.source.partition"])].append(
            (int(h["scorestream.source.offset"]), json.loads(m.value())["model_version"])
        )
    for partition, seen in by_partition.items():
        versions = [v for _, v in sorted(seen)]
        switch = versions.index(good)
        assert switch > 0 and set(versions[:switch]) == {v1}, partition
        assert set(versions[switch:]) == {good}, partition

    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"champion v{broken} cannot serve" in text and f"serving v{v1}, the newest" in text
    assert "cannot be read as JSON" in text
    assert "model version v99 not found" in text
    assert f"model v{bad_spec} not loaded" in text and "lacks the key 'label'" in text
    assert "categorical feature 'amount' is double in the events, expected string" in text
    assert f"model v{strict} not loaded" in text and "failed a dry run" in text
    assert "OneHotEncoderModel expected 11 categorical values" in text, text[-3000:]
    assert text.count(f"v{v1} keeps serving") >= 5


def test_a_champion_with_no_loadable_version_in_its_history_refuses_to_start(
    spark: Any, trained_registry: Registry, tmp_path: Path
) -> None:
    registry = Registry(shutil.copytree(trained_registry.root, tmp_path / "registry"))
    v1 = registry.resolve("champion")
    first, second = clone_version(registry, v1), clone_version(registry, v1)
    for version in (v1, first, second):
        _corrupt_model(registry, version)
    registry.promote(first)
    registry.promote(second)
    with pytest.raises(ModelError) as info:
        ModelHolder(registry, "champion")
    text = str(info.value)
    assert f"champion v{second} cannot serve and no version of its alias history can" in text
    assert all(f"v{v}: cannot load the Spark model" in text for v in (v1, first, second)), text
