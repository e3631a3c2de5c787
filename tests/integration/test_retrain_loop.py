"""Retraining closes the loop on the real broker: drift -> alert -> retrain -> shadow -> promotion.

The session's champion (v1) was trained on undrifted synthetic transactions. The stream then
shifts: `amount` is multiplied by 6 (Drift), and the labels follow the generator's hidden rule on
the shifted amounts, so v1's linear amount term misprices the new events. Step by step:

1. undrifted events: the scorer's drift gauges (read over HTTP from its /metrics) stay low and
   the drift trigger does not fire;
2. drifted events: the amount PSI rises over the act band and the trigger fires;
3. `retrain_once` with the trigger's reason builds the training set from the labels topic joined
   to the input topic (the last 1,500 labels), trains with v1's spec and estimator, and publishes
   `challenger` with its lineage (offsets, rows, parent); the same set read from a landing
   Parquet file has the same rows;
4. more drifted events with their labels: the scorer shadows the challenger and the feedback
   loop promotes it on log loss;
5. the new champion serves: its drift window (against its own profile) is low again, and its
   log loss on drifted events is below v1's on drifted events.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from streamkit import EVENT_TIME, read_quiet

from scorestream.contract.synthetic import SPEC, Drift, generate_columns
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.models.retrain import RetrainSettings
from scorestream.monitoring.drift_trigger import DriftTrigger, alert, scrape
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.monitoring.settings import MonitorSettings
from scorestream.producers.encoding import encode_json
from scorestream.producers.publisher import Publisher
from scorestream.streaming import training_set
from scorestream.streaming.feedback import FeedbackLoop, FeedbackSettings, log_loss
from scorestream.streaming.job import Scorer
from scorestream.streaming.monitor import ScorerMonitor
from scorestream.streaming.retrain import retrain_once
from scorestream.streaming.settings import ScorerSettings
from scorestream.streaming.shadow import ShadowScorer, ShadowSettings
from scorestream.streaming.training_set import DataWindow

CHUNK = 500
WINDOW = 500  # the drift window and the trigger's minimum window, in events
SHIFT = Drift(after=0, feature="amount", factor=6.0)
FEATURES = [*SPEC.numeric_names, *SPEC.categorical]


def _events(n: int, seed: int, drift: Drift | None) -> list[dict[str, Any]]:
    cols = generate_columns(n, seed=seed, drift=drift)
    events = []
    for i in range(n):
        event = {name: cols[name][i].item() for name in FEATURES}
        event["event_id"] = str(cols["event_id"][i])
        event["event_time"] = EVENT_TIME + seed * 100_000 + i
        event["is_fraud"] = int(cols["is_fraud"][i])
        events.append(event)
    return events


class Stream:
    """Publishes events in chunks, each chunk's labels after it, and waits until scored."""

    def __init__(self, kafka: KafkaSettings, scorer: Scorer, source: str, labels: str) -> None:
        self.kafka, self.scorer, self.source, self.labels = kafka, scorer, source, labels
        self.sent = 0

    def send(self, events: list[dict[str, Any]], timeout_s: float = 240) -> None:
        with Publisher(self.kafka) as pub:
            for start in range(0, len(events), CHUNK):
                chunk = events[start : start + CHUNK]
                for e in chunk:
                    body = {k: v for k, v in e.items() if k != "is_fraud"}
                    pub.send(self.source, encode_json(body), key=str(e["event_id"]).encode())
                pub.flush()
                self.sent += len(chunk)
                self.wait(self.sent, timeout_s)
                for e in chunk:  # labels come after the scores, as they do in practice
                    label = {"event_id": e["event_id"], "label": e["is_fraud"]}
                    label["label_time"] = int(time.time() * 1000)
                    pub.send(self.labels, json.dumps(label).encode())
                pub.flush()

    def wait(self, records: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.scorer.totals.records_in < records:
            self.scorer.raise_if_failed()
            assert time.monotonic() < deadline, f"{records} records not scored in {timeout_s} s"
            time.sleep(0.1)  # polling with a deadline


@pytest.mark.timeout(900)
def test_drift_triggers_a_retrain_that_feedback_promotes(
    spark: Any,
    kafka: KafkaSettings,
    topic_factory: Any,
    tmp_path: Path,
    trained_registry: Registry,
) -> None:
    started = time.monotonic()
    registry = Registry(shutil.copytree(trained_registry.root, tmp_path / "registry"))
    v1 = registry.resolve("champion")
    registry.clear("challenger")
    source, output = topic_factory("rt-in"), topic_factory("rt-out")
    labels_topic = topic_factory("rt-labels", partitions=1)
    metrics = ScorerMetrics(CollectorRegistry())
    monitor = ScorerMonitor(spark, MonitorSettings(metrics_port=0, window_events=WINDOW), metrics)
    shadow = ShadowScorer(
        kafka, registry, ShadowSettings(topic=f"{output}.shadow"), metrics, keep_pairs=True
    )
    feedback = FeedbackLoop(
        FeedbackSettings(
            labels_topic,
            window=1_000,
            min_labels=400,
            margin=0.005,
            metric="log_loss",
            auto_promote=True,
        ),
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
        listeners=[monitor, shadow, feedback],
    )
    monitor.attach(scorer)
    shadow.attach(scorer)
    feedback.attach(scorer)
    trigger = DriftTrigger(monitor.url, psi_threshold=0.25, min_window=WINDOW)
    undrifted, drifted = _events(WINDOW, 81, None), _events(2 * WINDOW, 82, SHIFT)
    shadowed, after = _events(2 * WINDOW, 83, SHIFT), _events(WINDOW, 84, SHIFT)
    labels = {e["event_id"]: e["is_fraud"] for e in undrifted + drifted + shadowed + after}
    marks: list[str] = []

    def step(name: str) -> None:
        marks.append(f"{name} {time.monotonic() - started:.0f} s")

    scorer.start()
    try:
        scorer.wait_ready()
        step("scorer ready")
        stream = Stream(kafka, scorer, source, labels_topic)

        # 1. Undrifted: low drift, no alert.
        stream.send(undrifted)
        scorer.settle()
        calm = scrape(trigger)
        assert calm.serving_version == v1 and calm.window_rows >= WINDOW
        calm_worst = calm.worst()
        assert calm_worst is not None and calm_worst[1] < 0.1, calm.psi
        assert alert(calm, trigger) is None

        step("undrifted")
        # 2. The stream shifts: the amount's PSI passes the act band and the trigger fires.
        stream.send(drifted)
        scorer.settle()
        shifted = scrape(trigger)
        assert shifted.window_rows >= WINDOW and shifted.serving_version == v1
        assert shifted.worst(include_prediction=False) == ("amount", shifted.psi["amount"])
        assert shifted.psi["amount"] > 1.0, shifted.psi
        reason = alert(shifted, trigger)
        assert reason is not None and reason.startswith("drift: PSI of amount ")

        # 3. Retrain from the last 1,000 labels joined to the input topic's features.
        step("drift alert")
        window = DataWindow(labels_topic, source, since_s=None, last=1_000, label_delay_s=600)
        settings = RetrainSettings(registry=registry.root, min_rows=800)
        entry = retrain_once(spark, kafka, settings, window, trigger=reason)
        assert registry.resolve("challenger") == entry.version == v1 + 1
        assert registry.resolve("champion") == v1  # promotion is the feedback's decision
        parent = registry.get(v1).metadata
        meta = entry.metadata
        assert meta["feature_spec"] == parent["feature_spec"]
        assert meta["estimator"] == parent["estimator"]
        lineage = meta["lineage"]
        assert lineage["trigger"] == reason and lineage["parent_version"] == v1
        assert lineage["labels"]["topic"] == labels_topic
        assert lineage["labels"]["offsets"] == {"0": [500, 1_500]}
        assert lineage["labels"]["records"] == lineage["labels"]["events"] == 1_000
        assert lineage["labels"]["invalid"] == lineage["labels"]["without_features"] == 0
        assert lineage["features"]["topic"] == source
        assert sum(e - s for s, e in lineage["features"]["offsets"].values()) == 1_500
        assert lineage["features"]["dead_letter_records"] == 0
        assert lineage["rows"] == 1_000
        assert meta["training"]["rows"] + meta["metrics"]["rows"] == 1_000
        assert meta["metrics"]["rows"] == lineage["holdout"]["parent"]["rows"]
        assert 150 <= meta["metrics"]["rows"] <= 250  # v1's validation fraction, 0.2
        # On the newest 200 drifted events the retrained model beats its parent.
        assert meta["metrics"]["log_loss"] < lineage["holdout"]["parent"]["log_loss"] - 0.01
        step("retrained")
        # The same training set from a landing file (what the scorer saw, as Parquet).
        landing = tmp_path / "landing.parquet"
        pd.DataFrame([{k: v for k, v in e.items() if k != "is_fraud"} for e in drifted]).assign(
            event_time=lambda f: pd.to_datetime(f["event_time"], unit="ms", utc=True)
        ).to_parquet(landing, coerce_timestamps="ms", allow_truncated_timestamps=True)
        from_file, file_lineage = training_set.build(
            spark,
            kafka,
            SPEC,
            DataWindow(labels_topic, since_s=None, last=1_000, features_path=str(landing)),
        )
        assert from_file.count() == 1_000 and file_lineage["features"] == {"path": str(landing)}
        assert {r[0] for r in from_file.select("event_id").collect()} == {
            e["event_id"] for e in drifted
        }
        from_file.unpersist()
        step("landing file")

        # 4. More drifted events: the challenger is shadowed and promoted on log loss.
        stream.send(shadowed)
        deadline = time.monotonic() + 240
        while registry.resolve("champion") != entry.version:
            assert time.monotonic() < deadline, f"no promotion: {feedback.last}"
            stream.send([{**shadowed[0], "event_id": f"tick-{stream.sent}"}])
        promotion = registry.alias("champion")
        assert promotion is not None and promotion["history"][-1] == v1
        assert promotion["reason"].startswith(f"auto-promote: challenger v{entry.version} log loss")
        assert len(feedback.promotions) == 1

        step("promoted")
        # 5. The new champion serves the shifted stream: drift and log loss are back down.
        stream.send(after)
        scorer.settle()
        settled = scrape(trigger)
        assert settled.serving_version == entry.version and settled.window_rows >= WINDOW
        assert settled.psi["amount"] < 0.1 < shifted.psi["amount"], settled.psi
        assert alert(settled, trigger) is None
    finally:
        scorer.stop()
        monitor.close()
        feedback.close()
    records = read_quiet(kafka, output, stream.sent, quiet_s=2.0, timeout_s=120)
    scores = [json.loads(m.value()) for m in records]
    assert len({s["event_id"] for s in scores}) == stream.sent
    by_version: dict[int, tuple[list[int], list[float]]] = {v1: ([], []), entry.version: ([], [])}
    drifted_ids = {e["event_id"] for e in drifted + shadowed + after}
    for s in scores:
        if s["event_id"] in drifted_ids:
            y, p = by_version[s["model_version"]]
            y.append(labels[s["event_id"]])
            p.append(s["score"])
    old_y, old_p = by_version[v1]
    new_y, new_p = by_version[entry.version]
    assert len(new_y) >= WINDOW
    old_loss = log_loss(np.array(old_y), np.array(old_p))
    new_loss = log_loss(np.array(new_y), np.array(new_p))
    assert new_loss < old_loss - 0.01, (old_loss, new_loss)
    print(
        f"\nretrain loop: PSI(amount) {calm.psi['amount']:.4f} -> {shifted.psi['amount']:.4f} "
        f"-> {settled.psi['amount']:.4f}; holdout log loss v{entry.version} "
        f"{meta['metrics']['log_loss']:.4f} vs v{v1} "
        f"{lineage['holdout']['parent']['log_loss']:.4f}; "
        f"served on drifted events: v{v1} {old_loss:.4f} ({len(old_y)}), v{entry.version} "
        f"{new_loss:.4f} ({len(new_y)}); {promotion['reason']}; "
        f"steps: {', '.join(marks)}; total {time.monotonic() - started:.0f} s"
    )
