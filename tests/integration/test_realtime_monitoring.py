"""Real-time mode is monitored: the same metrics and drift gauges as micro-batch mode.

A real-time query scores a one-partition topic (one long task) while the monitoring query
(micro-batch, writes nothing) feeds a ScorerMonitor: 2,000 clean events and 7 bad records,
then 2,000 events whose `amount` is tripled. The exporter must count every record by reason,
show the drift of `amount` against the model's reference profile, and expose every metric the
Grafana dashboard and the alert rules query.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from streamkit import read

from scorestream.contract.synthetic import Drift, iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.monitoring.dashboard import dashboard_exprs, rule_exprs
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.monitoring.settings import MonitorSettings
from scorestream.producers.publisher import ProduceSettings, Publisher, publish
from scorestream.streaming.job import Scorer
from scorestream.streaming.monitor import ScorerMonitor
from scorestream.streaming.realtime import (
    RealtimeScorer,
    RealtimeSettings,
    monitor_settings,
    monitor_slots,
)
from scorestream.streaming.settings import ScorerSettings

CLEAN = 2_000
BAD = {"DECODE_ERROR": 4, "WRONG_TYPE": 3}


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(url: str) -> Samples:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (our own 127.0.0.1 exporter)
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_realtime_scorer_exports_counters_and_drift(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    assert spark.sparkContext.defaultParallelism >= monitor_slots(1)
    source = topic_factory("rtm-in", partitions=1)
    settings = ScorerSettings(
        input_topic=source,
        output_topic=topic_factory("rtm-out", partitions=1),
        dead_letter_topic=topic_factory("rtm-dlq", partitions=1),
        registry=trained_registry.root,
        checkpoint=tmp_path / "rt",
        create_topics=False,
    )
    realtime = RealtimeScorer(spark, kafka, settings, RealtimeSettings("5 seconds"))
    monitor = ScorerMonitor(
        spark,
        MonitorSettings(metrics_port=0, window_events=CLEAN),
        ScorerMetrics(CollectorRegistry()),
    )
    watched = monitor_settings(settings, "2 seconds")
    assert watched.checkpoint_dir != settings.checkpoint_dir and not watched.publish
    watcher = Scorer(spark, kafka, watched, [monitor])
    monitor.attach(watcher, progress_of=lambda: realtime.query)
    events = list(iter_events(2 * CLEAN, seed=91, drift=Drift(CLEAN, "amount", 3.0)))
    now_ms = int(time.time() * 1000)
    for e in events:
        e["event_time"] = now_ms
    realtime.start()
    watcher.start()
    try:
        watcher.wait_ready()
        publish(kafka, ProduceSettings(topic=source), events=events[:CLEAN])
        with Publisher(kafka) as pub:
            for i in range(BAD["DECODE_ERROR"]):
                pub.send(source, b"{not json", key=f"bad-{i}".encode())
            for i in range(BAD["WRONG_TYPE"]):
                body = {**events[i], "event_id": f"wrong-{i}", "amount": "abc"}
                pub.send(source, json.dumps(body).encode(), key=f"wrong-{i}".encode())
        n_bad = sum(BAD.values())

        def counted(n: int, timeout_s: float) -> Samples:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                realtime.raise_if_failed()
                watcher.raise_if_failed()
                watcher.settle()
                samples = _samples(monitor.url)
                if _value(samples, "scorestream_records_in_total") >= n:
                    return samples
                time.sleep(0.5)  # polling the exporter with a deadline
            msg = f"the monitoring query did not count {n} records in {timeout_s:.0f} s"
            raise AssertionError(msg)

        before = counted(CLEAN + n_bad, 240)
        publish(kafka, ProduceSettings(topic=source), events=events[CLEAN:])
        after = counted(2 * CLEAN + n_bad, 240)
        # The real-time query wrote every score itself.
        scores = read(kafka, settings.output_topic, 2 * CLEAN, timeout_s=120)
    finally:
        watcher.stop()
        realtime.stop()
        monitor.close()

    assert len({m.key() for m in scores}) == 2 * CLEAN
    assert _value(after, "scorestream_records_in_total") == 2 * CLEAN + n_bad
    assert _value(after, "scorestream_records_scored_total") == 2 * CLEAN
    for reason, n in BAD.items():
        assert _value(after, "scorestream_records_dead_lettered_total", reason=reason) == n
    psi_before = _value(before, "scorestream_feature_psi", feature="amount", kind="numeric")
    psi_after = _value(after, "scorestream_feature_psi", feature="amount", kind="numeric")
    assert psi_before < 0.1 < 0.25 < psi_after, (psi_before, psi_after)
    # Every metric the dashboard and the alert rules read is exported in this mode too.
    exported = {name for name, _ in after}
    queried = {
        m
        for expr in [*dashboard_exprs(), *rule_exprs()]
        for m in re.findall(r"\b(scorestream_[a-z_]+)", expr)
    }
    missing = {
        m for m in queried if m not in exported and not any(e.startswith(m) for e in exported)
    }
    assert not missing, f"metrics the dashboard or rules query but real-time mode lacks: {missing}"
