"""Avro input on the real broker: plain and Confluent-framed, writer-schema evolution both ways,
Avro score output, and the dead-letter reasons Avro records can meet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamkit import EVENT_TIME, headers, read, running, wait_for

from scorestream.avro import EVENT_SCHEMA, avro_encoder, read_schema
from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.encoding import decoder
from scorestream.producers.publisher import ProduceSettings, Publisher, publish
from scorestream.streaming.avro_input import InputFormat
from scorestream.streaming.scoring import OutputFormat
from scorestream.streaming.settings import ScorerSettings
from scorestream.streaming.validate import ValidationSettings


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    out = []
    for i, event in enumerate(iter_events(n, seed=seed)):
        event["event_time"] = EVENT_TIME + i
        out.append(event)
    return out


def _schemas(tmp_path: Path) -> tuple[Path, Path]:
    """A newer writer schema (a field added with a default) and an older one (`country` gone)."""
    base = read_schema(EVENT_SCHEMA)
    newer = json.loads(json.dumps(base))
    newer["fields"].append({"name": "channel", "type": "string", "default": "web"})
    older = json.loads(json.dumps(base))
    older["fields"] = [f for f in older["fields"] if f["name"] != "country"]
    (tmp_path / "newer.avsc").write_text(json.dumps(newer))
    (tmp_path / "older.avsc").write_text(json.dumps(older))
    return tmp_path / "newer.avsc", tmp_path / "older.avsc"


def _settings(registry: Registry, source: str, output: str, checkpoint: Path, **kw: Any) -> Any:
    return ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=registry.root,
        checkpoint=checkpoint,
        **kw,
    )


def test_plain_avro_with_an_older_writer_schema(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Path,
    tmp_path: Path,
) -> None:
    _, older = _schemas(tmp_path)
    events = _events(400, seed=31)
    for e in events:
        e.pop("country")
    source, output = topic_factory("avro-in"), topic_factory("avro-out")
    fmt = InputFormat(kind="avro", writer_schema=older)
    settings = _settings(trained_registry, source, output, checkpoint, input_format=fmt)
    with running(spark, kafka, settings) as scorer:
        sent = publish(kafka, ProduceSettings(topic=source, fmt="avro", schema=older), events)
        assert sent == len(events)
        wait_for(scorer, len(events), timeout_s=120)
        messages = read(kafka, output, len(events), timeout_s=60)
    assert scorer.totals.scored == len(events), scorer.last_batch
    assert scorer.totals.dead_lettered == 0
    records = [json.loads(m.value()) for m in messages]
    assert sorted(r["event_id"] for r in records) == sorted(e["event_id"] for e in events)
    assert all(0.0 <= r["score"] <= 1.0 for r in records)


def test_confluent_framed_mixed_schema_versions_and_avro_scores(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Path,
    tmp_path: Path,
) -> None:
    newer, older = _schemas(tmp_path)
    ids = tmp_path / "schemas"
    ids.mkdir()
    (ids / "1.avsc").write_text(EVENT_SCHEMA.read_text())
    (ids / "2.avsc").write_text(newer.read_text())
    (ids / "3.avsc").write_text(older.read_text())
    events = _events(600, seed=32)
    source, output = topic_factory("cf-in"), topic_factory("cf-out")
    fmt = InputFormat(kind="confluent-avro", schema_dir=ids)
    settings = _settings(
        trained_registry,
        source,
        output,
        checkpoint,
        input_format=fmt,
        output_format=OutputFormat(kind="confluent-avro", schema_id=77),
    )
    encoders = {
        1: avro_encoder(True, EVENT_SCHEMA, 1),
        2: avro_encoder(True, newer, 2),
        3: avro_encoder(True, older, 3),
        9: avro_encoder(True, EVENT_SCHEMA, 9),  # an id the directory does not hold
    }
    unknown = [e["event_id"] for e in events[:10]]
    with running(spark, kafka, settings) as scorer, Publisher(kafka) as pub:
        for i, event in enumerate(events):
            key = event["event_id"].encode()
            if i < 10:
                pub.send(source, encoders[9](event), key=key)
            elif i % 3 == 0:
                pub.send(source, encoders[2]({**event, "channel": "app"}), key=key)
            elif i % 3 == 1:
                pub.send(source, encoders[3]({k: v for k, v in event.items() if k != "country"}))
            else:
                pub.send(source, encoders[1](event), key=key)
        pub.send(source, b'{"event_id": "json, not avro"}', key=b"not-framed")
        pub.flush()
        wait_for(scorer, len(events) + 1, timeout_s=120)
        scores = read(kafka, output, len(events) - 10, timeout_s=60)
        dead = read(kafka, settings.topics.dead_letter, 11, timeout_s=60)
    assert scorer.totals.records_in == len(events) + 1
    assert scorer.totals.scored == len(events) - 10
    assert scorer.totals.dead_lettered == 11
    decode = decoder("confluent-avro")
    assert all(m.value()[:5] == b"\x00\x00\x00\x00\x4d" for m in scores)  # schema id 77
    records = [decode(m.value()) for m in scores]
    assert sorted(r["event_id"] for r in records) == sorted(e["event_id"] for e in events[10:])
    version = trained_registry.resolve("champion")
    assert {r["model_version"] for r in records} == {version}
    assert {r["event_time"] for r in records} <= {e["event_time"] for e in events}
    messages = sorted(headers(m)["scorestream.error.message"] for m in dead)
    assert all(headers(m)["scorestream.error.reason"] == "DECODE_ERROR" for m in dead)
    assert sum("schema id 9 is not in" in text for text in messages) == 10, messages[:2]
    assert sum("not in the Confluent wire format" in text for text in messages) == 1
    assert sorted(m.key().decode() for m in dead) == sorted([*unknown, "not-framed"])


def test_avro_dead_letter_reasons(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Path,
    tmp_path: Path,
) -> None:
    """A loose contract (nullable id, amount as text) lets Avro records reach every reason."""
    loose = read_schema(EVENT_SCHEMA)
    for field in loose["fields"]:
        if field["name"] == "event_id":
            field["type"] = ["null", "string"]
            field["default"] = None
        if field["name"] == "amount":
            field["type"] = ["null", "string"]
    path = tmp_path / "loose.avsc"
    path.write_text(json.dumps(loose))
    encode = avro_encoder(schema=path)
    good = _events(50, seed=33)
    for e in good:
        e["amount"] = str(e["amount"])
    base = dict(good[0])
    bad = {
        "MISSING_FIELD": encode({**base, "event_id": None}),
        "WRONG_TYPE": encode({**base, "event_id": "w", "amount": "twelve"}),
        "NOT_FINITE": encode({**base, "event_id": "n", "distance_from_home_km": float("inf")}),
        "OUT_OF_RANGE": encode({**base, "event_id": "o", "hour_of_day": 24.5}),
        "TOO_LARGE": encode({**base, "event_id": "t" * 3000}),
        "DECODE_ERROR": b"\x02\x80\x80\x80\x80\x7f",
    }
    source, output = topic_factory("avro-dlq-in"), topic_factory("avro-dlq-out")
    settings = _settings(
        trained_registry,
        source,
        output,
        checkpoint,
        input_format=InputFormat(kind="avro", reader_schema=path),
        validation=ValidationSettings(max_record_bytes=2048),
    )
    with running(spark, kafka, settings) as scorer, Publisher(kafka) as pub:
        for event in good:
            pub.send(source, encode(event), key=event["event_id"].encode())
        for reason, value in bad.items():
            pub.send(source, value, key=reason.encode())
        pub.flush()
        wait_for(scorer, len(good) + len(bad), timeout_s=120)
        dead = read(kafka, settings.topics.dead_letter, len(bad), timeout_s=60)
    assert scorer.totals.scored == len(good)
    assert scorer.totals.dead_lettered == len(bad)
    by_key = {m.key().decode(): m for m in dead}
    assert set(by_key) == set(bad)
    for reason, value in bad.items():
        message = by_key[reason]
        assert headers(message)["scorestream.error.reason"] == reason, headers(message)
        assert message.value() == value  # the original bytes
    assert (
        "'amount' is twelve, expected a number"
        in headers(by_key["WRONG_TYPE"])["scorestream.error.message"]
    )
