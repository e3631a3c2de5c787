"""Real-time mode on the real broker: the same scores as micro-batch mode, and its latency.

The same events (good ones and a few that must be dead-lettered) are scored once by the
micro-batch Scorer and once by the real-time query into other topics; every score must be equal
(same event ids, same scores to 1e-12, same model version) and the dead letters the same.
Latency: 10,000 events are published at 1,000 ev/s and the latency of each is the output record's
Kafka timestamp minus the input record's (both CreateTime, stamped by clients on this machine).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamkit import EVENT_TIME, headers, read, running, wait_for

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.encoding import encode_json
from scorestream.producers.publisher import Publisher
from scorestream.streaming.realtime import RealtimeScorer, RealtimeSettings
from scorestream.streaming.settings import ScorerSettings

N_GOOD = 1_500
BAD = [b"not json", b"{", json.dumps({"event_id": "no-time", "amount": 1.0}).encode()]
RATE = 1_000
SECONDS = 10


def _events() -> list[tuple[bytes, bytes]]:
    records = []
    for i, event in enumerate(iter_events(N_GOOD, seed=303)):
        event["event_time"] = EVENT_TIME + i
        records.append((str(event["event_id"]).encode(), encode_json(event)))
    records += [(f"bad-{i}".encode(), body) for i, body in enumerate(BAD)]
    return records


def _by_id(messages: list[Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for m in messages:
        record = json.loads(m.value())
        out[record["event_id"]] = record
    return out


def _wait_realtime(rt: RealtimeScorer, kafka: KafkaSettings, topic: str, n: int) -> list[Any]:
    deadline = time.monotonic() + 180
    got: list[Any] = []
    while len(got) < n and time.monotonic() < deadline:
        rt.raise_if_failed()
        got = read(kafka, topic, n, timeout_s=5)
    return got


def test_realtime_scores_equal_microbatch_scores(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    records = _events()
    source = topic_factory("rt-in", partitions=2)
    with Publisher(kafka) as pub:
        for key, value in records:
            pub.send(source, value, key=key)

    micro = ScorerSettings(
        input_topic=source,
        output_topic=topic_factory("rt-mb-out"),
        dead_letter_topic=topic_factory("rt-mb-dlq"),
        registry=trained_registry.root,
        checkpoint=tmp_path / "mb",
    )
    with running(spark, kafka, micro) as scorer:
        wait_for(scorer, len(records), timeout_s=180)
    mb_scores = read(kafka, micro.output_topic, N_GOOD, timeout_s=60)
    mb_dead = read(kafka, micro.topics.dead_letter, len(BAD), timeout_s=60)

    rt_settings = ScorerSettings(
        input_topic=source,
        output_topic=topic_factory("rt-out"),
        dead_letter_topic=topic_factory("rt-dlq"),
        registry=trained_registry.root,
        checkpoint=tmp_path / "rt",
    )
    rt = RealtimeScorer(spark, kafka, rt_settings, RealtimeSettings("5 seconds"))
    rt.start()
    try:
        rt_scores = _wait_realtime(rt, kafka, rt_settings.output_topic, N_GOOD)
        rt_dead = read(kafka, rt_settings.topics.dead_letter, len(BAD), timeout_s=60)
    finally:
        rt.stop()

    mb, realtime = _by_id(mb_scores), _by_id(rt_scores)
    assert len(mb) == len(mb_scores) == N_GOOD
    assert len(realtime) == N_GOOD  # every event once (no duplicates within one run here)
    assert realtime.keys() == mb.keys()
    for event_id, record in mb.items():
        other = realtime[event_id]
        assert abs(other["score"] - record["score"]) <= 1e-12, event_id
        assert other["prediction"] == record["prediction"]
        assert other["model_version"] == record["model_version"] == rt.version
        assert other["event_time"] == record["event_time"]
    reasons = sorted(headers(m)["scorestream.error.reason"] for m in rt_dead)
    assert reasons == sorted(headers(m)["scorestream.error.reason"] for m in mb_dead)
    assert reasons == ["DECODE_ERROR", "DECODE_ERROR", "MISSING_FIELD"]


def _paced(kafka: KafkaSettings, topic: str, events: list[dict[str, Any]], rate: float) -> None:
    """Publish at `rate` events per second, in 10 ms slices, with no producer linger."""
    per_slice = max(1, int(rate / 100))
    started = time.monotonic()
    with Publisher(kafka, **{"linger.ms": 0}) as pub:
        for i in range(0, len(events), per_slice):
            due = started + i / rate
            while time.monotonic() < due:
                time.sleep(0.001)  # pacing the producer, not synchronising with the scorer
            for event in events[i : i + per_slice]:
                pub.send(topic, encode_json(event), key=str(event["event_id"]).encode())


def _latencies_ms(
    kafka: KafkaSettings, source: str, output: str, ids: set[str], total: int
) -> np.ndarray:
    """Output record timestamp minus input record timestamp, per event of `ids` (`total`
    records in each topic, warm-up included)."""
    sent = {
        m.key().decode(): m.timestamp()[1]
        for m in read(kafka, source, total, timeout_s=60)
        if m.key().decode() in ids
    }
    scored = {
        m.key().decode(): m.timestamp()[1]
        for m in read(kafka, output, total, timeout_s=60)
        if m.key().decode() in ids
    }
    assert sent.keys() == scored.keys() == ids
    return np.array([scored[k] - sent[k] for k in ids], dtype=float)


def _measure(
    spark: Any,
    kafka: KafkaSettings,
    registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
    mode: str,
) -> np.ndarray:
    source, output = topic_factory(f"lat-{mode}-in", partitions=2), topic_factory("lat-out")
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=registry.root,
        checkpoint=tmp_path / mode,
    )
    warm = list(iter_events(200, seed=91))
    events = list(iter_events(RATE * SECONDS, seed=92))
    now = int(time.time() * 1000)
    for e in warm + events:
        e["event_time"] = now
    scorer: Any
    if mode == "realtime":
        scorer = RealtimeScorer(spark, kafka, settings, RealtimeSettings("5 seconds"))
        scorer.start()
    else:
        from scorestream.streaming.job import Scorer

        scorer = Scorer(spark, kafka, settings)
        scorer.start()
        scorer.wait_ready()
    try:
        _paced(kafka, source, warm, RATE)
        deadline = time.monotonic() + 180
        while len(read(kafka, output, len(warm), timeout_s=3)) < len(warm):
            scorer.raise_if_failed()
            assert time.monotonic() < deadline, f"{mode}: warm-up events not scored in 180 s"
        _paced(kafka, source, events, RATE)
        ids = {str(e["event_id"]) for e in events}
        deadline = time.monotonic() + 180
        while len(read(kafka, output, len(warm) + len(ids), timeout_s=3)) < len(warm) + len(ids):
            scorer.raise_if_failed()
            assert time.monotonic() < deadline, f"{mode}: events not scored in 180 s"
    finally:
        scorer.stop()
    return _latencies_ms(kafka, source, output, ids, len(warm) + len(ids))


@pytest.mark.timeout(1800)
def test_realtime_latency_at_1000_events_per_second(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    figures = {}
    for mode in ("realtime", "microbatch"):
        lat = _measure(spark, kafka, trained_registry, topic_factory, tmp_path, mode)
        figures[mode] = (np.percentile(lat, 50), np.percentile(lat, 99), lat.max())
        print(
            f"\n{mode}: {len(lat)} events at {RATE}/s: latency p50 {figures[mode][0]:.0f} ms, "
            f"p99 {figures[mode][1]:.0f} ms, max {figures[mode][2]:.0f} ms"
        )
    # Every event of both runs was scored once (checked in _latencies_ms). That real-time mode
    # beats micro-batches is NOT asserted: on the shared 2-core machine here both were ~10 s
    # at the median (docs/operations.md); the figures are printed for the record.
    assert all(np.isfinite(v) for f in figures.values() for v in f)
