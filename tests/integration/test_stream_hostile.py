"""Records that used to stop the scorer for good, on the real broker: an event_time in
nanoseconds and a 2 MB record on a topic that allows 8 MB. Both are dead-lettered, the stream
goes on, and the dead letter of the large one is truncated to what its topic takes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamkit import EVENT_TIME, headers, read, running, wait_for

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.publisher import Publisher
from scorestream.streaming.settings import ScorerSettings
from scorestream.streaming.validate import ValidationSettings

EIGHT_MB = str(8 * 1024 * 1024)


def encode(event: dict[str, Any]) -> bytes:
    """JSON as a producer writes it: event_time as the number it is."""
    return json.dumps(event, separators=(",", ":")).encode()


def test_nanosecond_event_time_and_2mb_record_are_dead_lettered_and_stream_goes_on(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Path,
) -> None:
    events = list(iter_events(6, seed=3))
    for i, event in enumerate(events):
        event["event_time"] = EVENT_TIME + i
    nanos = {**events[0], "event_id": "nanos", "event_time": 1_700_000_000_000_000_000}
    huge = {**events[1], "event_id": "huge", "merchant_category": "x" * 2_000_000}
    before, after = events[2:4], events[4:]
    source = topic_factory("hostile-in", partitions=1, **{"max.message.bytes": EIGHT_MB})
    output = topic_factory("hostile-out")
    dead_letter = topic_factory("hostile-dlq")  # the broker's default limit, about 1 MB
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        dead_letter_topic=dead_letter,
        registry=trained_registry.root,
        checkpoint=checkpoint,
        max_offsets_per_trigger=2,  # the bad records and the good ones after them in
        validation=ValidationSettings(),  # other batches; the scorer on its defaults
    )
    published = [*before, nanos, huge, *after]
    with (
        running(spark, kafka, settings) as scorer,
        Publisher(kafka, **{"message.max.bytes": 9_000_000}) as pub,
    ):
        for event in published:
            pub.send(source, encode(event), key=event["event_id"].encode())
        pub.flush()
        wait_for(scorer, len(published), timeout_s=120)
        scores = read(kafka, output, len(before) + len(after), timeout_s=30)
        dead = read(kafka, dead_letter, 2, timeout_s=30)
        assert scorer.query is not None and scorer.query.isActive

    assert sorted(json.loads(m.value())["event_id"] for m in scores) == sorted(
        e["event_id"] for e in before + after
    )
    by_key = {m.key(): m for m in dead}
    assert set(by_key) == {b"nanos", b"huge"}
    ns = headers(by_key[b"nanos"])
    assert ns["scorestream.error.reason"] == "OUT_OF_RANGE"
    assert "'event_time' is 1700000000000000000" in ns["scorestream.error.message"], ns
    assert "nanoseconds" in ns["scorestream.error.message"], ns
    assert json.loads(by_key[b"nanos"].value())["event_id"] == "nanos"  # kept whole
    big = by_key[b"huge"]
    h = headers(big)
    assert h["scorestream.error.reason"] == "TOO_LARGE"
    original = len(encode(huge))
    assert h["scorestream.truncated"] == "true"
    assert int(h["scorestream.original.bytes"]) == original
    # As many bytes as fit a 1 MB topic, and they are the record's first bytes.
    assert 1_000_000 < len(big.value()) <= 1_048_588
    assert encode(huge).startswith(big.value())
