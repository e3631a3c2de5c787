"""Challenger shadow scoring and label feedback on the real broker.

Two models on the synthetic card transactions: the session's trained model ("informed", ROC AUC
about 0.7) and one trained on the same kind of data with its labels shuffled ("noise", ROC AUC
about 0.5). Events go to the input topic in chunks and their true labels (from the generator's
hidden rule) to a labels topic one chunk behind, as labels arrive late in practice.

- informed challenger vs noise champion: the shadow topic holds both versions' scores for every
  scored event (champion scores equal to the output topic's, challenger scores equal to a batch
  transform with the challenger), the agreement figures add up, and the feedback loop promotes
  the challenger with its reason in the registry; the scorer then serves it without a restart.
- noise challenger vs informed champion: no promotion, the champion stays.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from streamkit import EVENT_TIME, read_quiet

from scorestream.contract.synthetic import SPEC, generate_columns
from scorestream.kafka import KafkaSettings
from scorestream.models.evaluate import score_column
from scorestream.models.registry import Registry
from scorestream.models.train import TrainSettings, train
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.producers.encoding import encode_json
from scorestream.producers.publisher import Publisher
from scorestream.streaming.feedback import FeedbackLoop, FeedbackSettings
from scorestream.streaming.job import Scorer
from scorestream.streaming.settings import ScorerSettings
from scorestream.streaming.shadow import ShadowScorer, ShadowSettings

CHUNK = 500
CHUNKS = 8
FEATURES = [*SPEC.numeric_names, *SPEC.categorical]


@dataclass
class Models:
    root: Path
    informed: int
    noise: int


@pytest.fixture(scope="module")
def models(
    spark: Any, trained_registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Models:
    root = tmp_path_factory.mktemp("shadow") / "registry"
    registry = Registry(shutil.copytree(trained_registry.root, root))
    informed = registry.resolve("champion")
    cols = generate_columns(6_000, seed=12)
    cols["is_fraud"] = np.random.default_rng(4).permutation(cols["is_fraud"])
    noise = train(
        spark,
        spark.createDataFrame(pd.DataFrame(cols)),
        SPEC,
        TrainSettings(registry=root, seed=12, promote=False),
        fingerprint="synthetic-shuffled-labels",
        source="synthetic",
        progress=lambda _m: None,
    ).version
    return Models(root=root, informed=informed, noise=noise)


def _events(seed: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    cols = generate_columns(CHUNK * CHUNKS, seed=seed)
    events, labels = [], {}
    for i in range(CHUNK * CHUNKS):
        event = {name: cols[name][i].item() for name in FEATURES}
        event["event_id"] = str(cols["event_id"][i])
        event["event_time"] = EVENT_TIME + i
        events.append(event)
        labels[event["event_id"]] = int(cols["is_fraud"][i])
    return events, labels


class Durations:
    """A BatchListener keeping the champion's batch durations (measured before listeners)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_batch(self, _scored: Any, stats: Any) -> None:
        self.seconds.append(stats.duration_s)


@dataclass
class Run:
    scorer: Scorer
    shadow: ShadowScorer
    feedback: FeedbackLoop
    metrics: ScorerMetrics
    durations: Durations
    output: list[Any]
    shadow_records: list[Any]
    events: list[dict[str, Any]]


def _run(
    spark: Any,
    kafka: KafkaSettings,
    topic_factory: Any,
    tmp_path: Path,
    registry: Registry,
    settings: FeedbackSettings,
    seed: int,
) -> Run:
    events, labels = _events(seed)
    source, output = topic_factory("sh-in", partitions=2), topic_factory("sh-out")
    labels_topic = topic_factory("sh-labels", partitions=1)
    metrics = ScorerMetrics(CollectorRegistry())
    durations = Durations()
    shadow = ShadowScorer(
        kafka, registry, ShadowSettings(topic=f"{output}.shadow"), metrics, keep_pairs=True
    )
    feedback = FeedbackLoop(
        FeedbackSettings(**{**settings.__dict__, "labels_topic": labels_topic}),
        registry,
        kafka,
        shadow,
    )
    scorer = Scorer(
        spark,
        kafka,
        ScorerSettings(
            input_topic=source,
            output_topic=output,
            registry=registry.root,
            checkpoint=tmp_path / "checkpoint",
            max_offsets_per_trigger=CHUNK,
        ),
        listeners=[shadow, feedback, durations],
    )
    shadow.attach(scorer)
    feedback.attach(scorer)
    scorer.start()
    try:
        scorer.wait_ready()
        with Publisher(kafka) as pub:
            for c in range(CHUNKS + 1):
                if c < CHUNKS:
                    for e in events[c * CHUNK : (c + 1) * CHUNK]:
                        pub.send(source, encode_json(e), key=str(e["event_id"]).encode())
                if c > 0:  # labels of the previous chunk, after its events
                    for e in events[(c - 1) * CHUNK : c * CHUNK]:
                        body = {"event_id": e["event_id"], "label": labels[e["event_id"]]}
                        body["label_time"] = int(time.time() * 1000)
                        pub.send(labels_topic, json.dumps(body).encode())
                pub.flush()
                deadline = time.monotonic() + 400
                while scorer.totals.records_in < min(c + 1, CHUNKS) * CHUNK:
                    scorer.raise_if_failed()
                    assert time.monotonic() < deadline, f"chunk {c} not scored in 180 s"
                    time.sleep(0.1)  # polling with a deadline
        # The last chunk's labels are read at the next batch: one more event brings it.
        with Publisher(kafka) as pub:
            tail = {**events[0], "event_id": "tail"}
            pub.send(source, encode_json(tail), key=b"tail")
        deadline = time.monotonic() + 120
        while scorer.totals.records_in < CHUNK * CHUNKS + 1:
            scorer.raise_if_failed()
            assert time.monotonic() < deadline
            time.sleep(0.1)  # polling with a deadline
    finally:
        scorer.stop()
        feedback.close()
    n = CHUNK * CHUNKS + 1
    return Run(
        scorer=scorer,
        shadow=shadow,
        feedback=feedback,
        metrics=metrics,
        durations=durations,
        output=read_quiet(kafka, output, n, quiet_s=2.0, timeout_s=120),
        shadow_records=read_quiet(
            kafka, f"{output}.shadow", shadow.records, quiet_s=2.0, timeout_s=120
        ),
        events=events,
    )


def _challenger_scores(
    spark: Any, registry: Registry, version: int, events: list[dict[str, Any]]
) -> dict[str, float]:
    _, model = registry.load(version)
    frame = spark.createDataFrame(pd.DataFrame(events)[["event_id", *FEATURES]])
    rows = model.transform(frame).select("event_id", score_column().alias("s")).collect()
    return {r["event_id"]: float(r["s"]) for r in rows}


@pytest.mark.timeout(1800)
def test_informed_challenger_is_shadowed_then_promoted(
    spark: Any, kafka: KafkaSettings, topic_factory: Any, tmp_path: Path, models: Models
) -> None:
    registry = Registry(shutil.copytree(models.root, tmp_path / "registry"))
    registry.promote(models.noise, "champion", reason="test: noise serves")
    registry.promote(models.informed, "challenger", reason="test: informed shadows")
    settings = FeedbackSettings(
        "labels", window=3_000, min_labels=1_500, margin=0.05, auto_promote=True
    )
    run = _run(spark, kafka, topic_factory, tmp_path, registry, settings, seed=61)

    # The promotion, with its reason, in the registry; the scorer switched without a restart.
    champion = registry.alias("champion")
    assert champion is not None and champion["version"] == models.informed
    assert champion["reason"].startswith(f"auto-promote: challenger v{models.informed} ROC AUC")
    assert champion["history"][-1] == models.noise
    assert len(run.feedback.promotions) == 1
    assert run.scorer.holder.version == models.informed

    # Champion output: every event once, and nothing but scores (the shadow never writes there).
    out = {json.loads(m.value())["event_id"]: json.loads(m.value()) for m in run.output}
    assert len(out) == len(run.output) == CHUNK * CHUNKS + 1

    # Shadow topic: both versions for each event scored while noise was champion.
    shadow = [json.loads(m.value()) for m in run.shadow_records]
    assert len(shadow) == run.shadow.records >= 1_500
    assert all(
        m.key().decode() == r["event_id"] for m, r in zip(run.shadow_records, shadow, strict=True)
    )
    expected = _challenger_scores(spark, registry, models.informed, run.events)
    for record in shadow:
        assert record["champion_version"] == models.noise
        assert record["challenger_version"] == models.informed
        champion_out = out[record["event_id"]]
        assert champion_out["model_version"] == models.noise
        assert abs(record["champion_score"] - champion_out["score"]) <= 1e-12
        assert abs(record["challenger_score"] - expected[record["event_id"]]) <= 1e-9
    # After the promotion the informed model serves, and its scores are the challenger's.
    promoted = [r for r in out.values() if r["model_version"] == models.informed]
    assert promoted, "no score from the promoted version"
    for r in promoted:
        if r["event_id"] in expected:
            assert abs(r["score"] - expected[r["event_id"]]) <= 1e-9

    # Agreement figures: totals over the shadow topic equal the scorer's running totals.
    equal = sum(r["champion_prediction"] == r["challenger_prediction"] for r in shadow)
    diff = sum(abs(r["champion_score"] - r["challenger_score"]) for r in shadow)
    assert run.shadow.equal_total == equal
    assert run.shadow.abs_diff_total == pytest.approx(diff, rel=1e-9)
    assert run.metrics.shadow_records._value.get() == len(shadow)
    assert run.shadow.last is not None
    assert run.metrics.shadow_agreement._value.get() == run.shadow.last.agreement
    print(
        f"\nshadow: {len(shadow)} records, agreement {equal / len(shadow):.4f}, "
        f"mean |diff| {diff / len(shadow):.4f}; promotion: {champion['reason']}; "
        f"shadow time {run.shadow.seconds:.2f} s over {run.shadow.batches} shadowed batches; "
        f"champion scoring: {sum(run.durations.seconds):.2f} s over "
        f"{len(run.durations.seconds)} batches"
    )


@pytest.mark.timeout(1800)
def test_noise_challenger_is_not_promoted(
    spark: Any, kafka: KafkaSettings, topic_factory: Any, tmp_path: Path, models: Models
) -> None:
    registry = Registry(shutil.copytree(models.root, tmp_path / "registry"))
    registry.promote(models.informed, "champion", reason="test: informed serves")
    registry.promote(models.noise, "challenger", reason="test: noise shadows")
    settings = FeedbackSettings(
        "labels", window=3_000, min_labels=1_500, margin=0.0, auto_promote=True
    )
    run = _run(spark, kafka, topic_factory, tmp_path, registry, settings, seed=62)
    champion = registry.alias("champion")
    assert champion is not None and champion["version"] == models.informed
    assert run.feedback.promotions == []
    figures = run.feedback.last
    assert figures is not None and figures.labelled >= 1_500
    assert figures.challenger_auc < figures.champion_auc
    assert {json.loads(m.value())["model_version"] for m in run.output} == {models.informed}
    print(
        f"\nno promotion: champion AUC {figures.champion_auc:.4f} log loss "
        f"{figures.champion_log_loss:.4f}; challenger AUC {figures.challenger_auc:.4f} "
        f"log loss {figures.challenger_log_loss:.4f} over {figures.labelled} labels"
    )
