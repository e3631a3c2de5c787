"""Dead letters on the real broker: every reason, the record format, and count conservation
over a mixed JSON stream (input = scored + dead-lettered, nothing dropped)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from streamkit import EVENT_TIME, headers, read, running, wait_for

from scorestream.contract.reasons import PROCESSING_ERROR, REASONS
from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.encoding import encode_json
from scorestream.producers.publisher import Publisher
from scorestream.streaming.settings import ScorerSettings
from scorestream.streaming.validate import ValidationSettings

PER_REASON = 25
# The reasons validation gives (PROCESSING_ERROR is the isolation's: test_stream_isolation.py).
CHECKED = tuple(r for r in REASONS if r != PROCESSING_ERROR)


def _bad(reason: str, i: int, base: dict[str, Any]) -> bytes:
    event = {**base, "event_id": f"bad-{reason}-{i}"}
    if reason == "TOO_LARGE":
        return encode_json({**event, "merchant_category": "x" * 3000})
    if reason == "DECODE_ERROR":
        return [b"not json", b"\xff\xfe\x00", b"[1, 2]", b"{", b""][i % 5]
    if reason == "MISSING_FIELD":
        return encode_json(
            {k: v for k, v in event.items() if k != ("event_id", "event_time")[i % 2]}
        )
    if reason == "WRONG_TYPE":
        return encode_json(
            [{**event, "amount": "12 euros"}, {**event, "event_time": "yesterday"}][i % 2]
        )
    if reason == "NOT_FINITE":
        return encode_json({**event, "amount": [float("nan"), float("inf")][i % 2]})
    if reason == "OUT_OF_RANGE":
        return encode_json([{**event, "hour_of_day": 24.0}, {**event, "amount": -1.0}][i % 2])
    raise AssertionError(reason)


def test_mixed_stream_conserves_counts_and_dead_letters_each_reason(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Path,
) -> None:
    good = []
    for i, event in enumerate(iter_events(2_000, seed=41)):
        event["event_time"] = EVENT_TIME + i
        good.append(event)
    records: list[tuple[bytes | None, bytes, str | None]] = [
        (e["event_id"].encode(), encode_json(e), None) for e in good
    ]
    for reason in CHECKED:
        records += [
            (f"key-{reason}-{i}".encode(), _bad(reason, i, good[i]), reason)
            for i in range(PER_REASON)
        ]
    random.Random(5).shuffle(records)
    source, output = topic_factory("mixed-in", partitions=3), topic_factory("mixed-out")
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=trained_registry.root,
        checkpoint=checkpoint,
        max_offsets_per_trigger=700,  # several batches
        validation=ValidationSettings(max_record_bytes=2048),
    )
    with running(spark, kafka, settings) as scorer, Publisher(kafka) as pub:
        for key, value, _ in records:
            pub.send(source, value, key=key)
        pub.flush()
        wait_for(scorer, len(records), timeout_s=180)
        scores = read(kafka, output, len(good), timeout_s=60)
        dead = read(kafka, settings.topics.dead_letter, PER_REASON * len(CHECKED), timeout_s=60)
        sources = read(kafka, source, len(records), timeout_s=60)

    t = scorer.totals
    assert t.batches >= 3
    assert t.records_in == len(records) == t.scored + t.dead_lettered
    assert (t.scored, t.dead_lettered) == (len(good), PER_REASON * len(CHECKED))
    # What reached the topics, not only what the scorer counted.
    assert len(scores) + len(dead) == len(records)
    assert sorted(json.loads(m.value())["event_id"] for m in scores) == sorted(
        e["event_id"] for e in good
    )
    expected = {key.decode(): reason for key, _, reason in records if key and reason}
    assert Counter(headers(m)["scorestream.error.reason"] for m in dead) == Counter(
        expected.values()
    )
    original = {(m.partition(), m.offset()): m for m in sources}
    for message in dead:
        h = headers(message)
        assert h["scorestream.error.reason"] == expected[message.key().decode()]
        assert h["scorestream.error.message"], h
        assert h["scorestream.source.topic"] == source
        src = original[
            (int(h["scorestream.source.partition"]), int(h["scorestream.source.offset"]))
        ]
        assert (src.key(), src.value()) == (message.key(), message.value())
    messages = {headers(m)["scorestream.error.reason"]: [] for m in dead}
    for m in dead:
        messages[headers(m)["scorestream.error.reason"]].append(
            headers(m)["scorestream.error.message"]
        )
    assert any("larger than the limit of 2048" in t for t in messages["TOO_LARGE"])
    assert any("required field 'event_time' is missing" in t for t in messages["MISSING_FIELD"])
    assert any(
        "feature 'amount' is 12 euros, expected a number" in t for t in messages["WRONG_TYPE"]
    )
    assert any("'event_time' is yesterday" in t for t in messages["WRONG_TYPE"])
    assert any("feature 'amount' is NaN, expected a finite" in t for t in messages["NOT_FINITE"])
    assert any(
        "'hour_of_day' is 24.0, expected a value in [0.0, 23.0]" in t
        for t in messages["OUT_OF_RANGE"]
    )
    assert any("value is not a JSON object: not json" in t for t in messages["DECODE_ERROR"])
