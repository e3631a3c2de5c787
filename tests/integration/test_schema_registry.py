"""confluent-avro with a real Schema Registry (Apicurio, HTTPS and basic auth): writer schemas
fetched by id, an unknown id and an incompatible schema dead-lettered, the score schema
registered under <output topic>-value with its real id in the framing, start-up stopped by an
unreachable registry or refused credentials, and the produce/consume commands."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures_schema_registry import PASSWORD, RegistryServer
from streamkit import EVENT_TIME, headers, read, running, wait_for

from scorestream.avro import EVENT_SCHEMA, SCORE_SCHEMA, avro_encoder, read_schema, unframe
from scorestream.contract.synthetic import iter_events
from scorestream.errors import StackError
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.encoding import decoder
from scorestream.producers.publisher import Publisher
from scorestream.schema_registry import SchemaRegistry, SchemaRegistrySettings
from scorestream.streaming.avro_input import InputFormat
from scorestream.streaming.job import Scorer
from scorestream.streaming.scoring import OutputFormat
from scorestream.streaming.settings import ScorerSettings


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    out = []
    for i, event in enumerate(iter_events(n, seed=seed)):
        event["event_time"] = EVENT_TIME + i
        out.append(event)
    return out


def _newer_schema() -> str:
    newer = read_schema(EVENT_SCHEMA)
    newer["fields"].append({"name": "channel", "type": "string", "default": "web"})
    return json.dumps(newer)


def _incompatible_schema() -> str:
    """`amount` as text: the reader's double cannot read it."""
    bad = read_schema(EVENT_SCHEMA)
    for f in bad["fields"]:
        if f["name"] == "amount":
            f["type"] = "string"
            del f["default"]
    return json.dumps(bad)


def test_writer_schemas_by_id_and_the_score_schema_registered(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Path,
    schema_registry: RegistryServer,
) -> None:
    source, output = topic_factory("sr-in"), topic_factory("sr-out")
    client = SchemaRegistry(schema_registry.settings())
    base_id = client.register(f"{source}-value", EVENT_SCHEMA.read_text())
    newer_id = client.register(f"{source}-value", _newer_schema())
    bad_id = client.register(f"{source}-other", _incompatible_schema())  # another subject
    unknown_id = max(base_id, newer_id, bad_id) + 1000
    assert len({base_id, newer_id, bad_id}) == 3
    events = _events(300, seed=41)
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=trained_registry.root,
        checkpoint=checkpoint,
        input_format=InputFormat(kind="confluent-avro", registry=schema_registry.settings()),
        output_format=OutputFormat(kind="confluent-avro", registry=schema_registry.settings()),
    )
    encode_base = avro_encoder(True, EVENT_SCHEMA, base_id)
    encode_newer = avro_encoder(True, _newer_schema(), newer_id)
    encode_unknown = avro_encoder(True, EVENT_SCHEMA, unknown_id)
    encode_bad = avro_encoder(True, _incompatible_schema(), bad_id)
    with running(spark, kafka, settings) as scorer, Publisher(kafka) as pub:
        for i, event in enumerate(events):
            key = event["event_id"].encode()
            value = encode_newer({**event, "channel": "app"}) if i % 2 else encode_base(event)
            pub.send(source, value, key=key)
        for i in range(7):
            pub.send(source, encode_unknown(events[i]), key=f"unknown-{i}".encode())
        for i in range(3):
            pub.send(source, encode_bad({**events[i], "amount": "12"}), key=f"bad-{i}".encode())
        pub.flush()
        wait_for(scorer, len(events) + 10, timeout_s=120)
        scores = read(kafka, output, len(events), timeout_s=60)
        dead = read(kafka, settings.topics.dead_letter, 10, timeout_s=60)
    assert scorer.totals.scored == len(events), scorer.last_batch
    assert scorer.totals.dead_lettered == 10
    # The score schema is registered under <output>-value and its id frames every score.
    from confluent_kafka.schema_registry import SchemaRegistryClient

    sr = SchemaRegistryClient(schema_registry.settings().client_config())
    latest = sr.get_latest_version(f"{output}-value")
    assert json.loads(latest.schema.schema_str)["name"] == read_schema(SCORE_SCHEMA)["name"]
    assert {unframe(m.value())[0] for m in scores} == {latest.schema_id}
    records = [decoder("confluent-avro", registry=client)(m.value()) for m in scores]
    assert sorted(r["event_id"] for r in records) == sorted(e["event_id"] for e in events)
    assert all(0.0 <= r["score"] <= 1.0 for r in records)
    by_key = {m.key().decode(): headers(m) for m in dead}
    assert sorted(by_key) == sorted(
        [f"unknown-{i}" for i in range(7)] + [f"bad-{i}" for i in range(3)]
    )
    for key, h in by_key.items():
        assert h["scorestream.error.reason"] == "DECODE_ERROR", h
        text = h["scorestream.error.message"]
        if key.startswith("unknown"):
            assert (
                f"schema id {unknown_id} is not in the Schema Registry at {schema_registry.url}"
                in text
            )
        else:
            assert f"schema id {bad_id} of the Schema Registry at {schema_registry.url}" in text
            assert "cannot be read with the reader schema" in text


def test_an_unreachable_registry_or_a_refused_password_stops_start_up(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
    schema_registry: RegistryServer,
) -> None:
    closed = SchemaRegistrySettings("http://127.0.0.1:9/apis/ccompat/v7", {"max.retries": "0"})
    wrong = schema_registry.settings(**{"basic.auth.user.info": "scorer:not-the-password"})
    for registry, expected in ((closed, "did not answer"), (wrong, "refused our credentials")):
        settings = ScorerSettings(
            input_topic=topic_factory("sr-down-in"),
            output_topic=topic_factory("sr-down-out"),
            registry=trained_registry.root,
            checkpoint=tmp_path / expected.replace(" ", "-"),
            input_format=InputFormat(kind="confluent-avro", registry=registry),
        )
        scorer = Scorer(spark, kafka, settings)
        with pytest.raises(StackError) as failure:
            scorer.start()
        text = str(failure.value)
        assert f"Schema Registry at {registry.shown_url}" in text and expected in text, text
        assert "not-the-password" not in text
        assert scorer.query is None


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scorestream", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_produce_and_consume_with_the_registry_from_client_properties(
    kafka: KafkaSettings, topic_factory: Any, tmp_path: Path, schema_registry: RegistryServer
) -> None:
    """The user's path: registry URL, basic auth and CA in client.properties, beside Kafka's."""
    props = tmp_path / "client.properties"
    props.write_text("client.id=registry-test\n" + schema_registry.properties())
    topic = topic_factory("sr-produce", partitions=1)
    events = _events(40, seed=42)
    rows = tmp_path / "events.csv"
    with rows.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(events[0]))
        writer.writeheader()
        writer.writerows(events)
    done = _cli(
        "produce", "-b", kafka.bootstrap, "--kafka-config", str(props), "--topic", topic,
        "--format", "confluent-avro", "--from", str(rows), "--rate", "500",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    client = SchemaRegistry(schema_registry.settings())
    registered = client.register(f"{topic}-value", EVENT_SCHEMA.read_text())  # same schema: same id
    messages = read(kafka, topic, 40, timeout_s=30)
    assert len(messages) == 40
    assert {unframe(m.value())[0] for m in messages} == {registered}
    decode = decoder("confluent-avro", registry=client)
    got = [decode(m.value()) for m in messages]
    assert [g["event_id"] for g in got] == [e["event_id"] for e in events]
    assert [g["amount"] for g in got] == [e["amount"] for e in events]
    assert [g["event_time"] for g in got] == [e["event_time"] for e in events]
    # consume decodes by the id in each record, the writer schema fetched from the registry.
    consumed = _cli(
        "consume", "-b", kafka.bootstrap, "--kafka-config", str(props), "--topic", topic,
        "--format", "confluent-avro", "--count", "10",
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    printed = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert [p["event_id"] for p in printed] == [e["event_id"] for e in events[:10]]
    # JSON with a registry URL only in the shared file: the registry is not used, no error.
    plain = _cli("produce", "--bootstrap-server", kafka.bootstrap, "--kafka-config", str(props),
                 "--topic", topic_factory("sr-json"), "--count", "5")  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    # The wrong password: a message naming the registry, never the secret.
    props.write_text(schema_registry.properties().replace(PASSWORD, "Wrong-Secret-9"))
    refused = _cli(
        "produce", "-b", kafka.bootstrap, "--kafka-config", str(props), "--topic", topic,
        "--count", "5", "--format", "confluent-avro",
    )  # fmt: skip
    assert refused.returncode != 0
    assert f"Schema Registry at {schema_registry.url}" in refused.stderr, refused.stderr
    assert "refused our credentials" in refused.stderr
    assert "Wrong-Secret-9" not in refused.stdout + refused.stderr
