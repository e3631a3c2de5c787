"""Kafka connection settings: merging, Spark and librdkafka views, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorestream.errors import ConfigError
from scorestream.kafka import KafkaSettings, parse_option


def test_options_file_then_flags_win(tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text(
        "# comment\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "bootstrap.servers=ignored:1\nclient.id=from-file\n",
        encoding="utf-8",
    )
    s = KafkaSettings.build("127.0.0.1:9092", str(props), ["client.id=from-flag", "a=b=c"])
    assert s.options["client.id"] == "from-flag"
    assert s.options["a"] == "b=c"
    assert "bootstrap.servers" not in s.options  # --bootstrap is the one place for it
    assert s.options["security.protocol"] == "SASL_PLAINTEXT"


def test_properties_file_is_read_as_java_reads_it(tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text(
        "! another comment style\n"
        "security.protocol: SASL_SSL\n"  # `key: value` and `key value` are valid Java lines
        "sasl.mechanism PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n"
        '    username="alice" \\\n'
        '    password="s3cr=t";\n'
        "ssl.truststore.location=/etc/kafka/trust\\u0073tore.jks\n",
        encoding="utf-8",
    )
    s = KafkaSettings.build("127.0.0.1:9092", str(props), [])
    assert s.options == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="alice" password="s3cr=t";',
        "ssl.truststore.location": "/etc/kafka/truststore.jks",
    }  # no bogus `username`/`password` keys from the continued lines
    assert "s3cr=t" not in repr(s)


def test_sasl_credentials_become_jaas_for_spark_and_stay_native_for_librdkafka() -> None:
    s = KafkaSettings(
        "h:9093",
        {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "alice",
            "sasl.password": 's3cr"t',
        },
    )
    spark = s.spark_options()
    assert spark["kafka.bootstrap.servers"] == "h:9093"
    assert spark["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="alice" password="s3cr\\"t";'
    )
    assert "kafka.sasl.password" not in spark  # not a Java client property
    native = s.confluent(**{"group.id": "g"})
    assert native["sasl.password"] == 's3cr"t'
    assert native["group.id"] == "g"
    assert "sasl.jaas.config" not in native


def test_sink_defaults_apply_only_where_the_user_set_nothing() -> None:
    plain = KafkaSettings("h:9092").spark_sink_options()
    assert plain["kafka.linger.ms"] == "5"
    assert plain["kafka.batch.size"] == "262144"
    assert plain["kafka.compression.type"] == "lz4"
    assert plain["kafka.bootstrap.servers"] == "h:9092"
    assert KafkaSettings("h:9092").spark_sink_options(linger_ms=0)["kafka.linger.ms"] == "0"
    mine = KafkaSettings("h:9092", {"compression.type": "none", "linger.ms": "50"})
    opts = mine.spark_sink_options(linger_ms=0)
    assert opts["kafka.compression.type"] == "none"
    assert opts["kafka.linger.ms"] == "50"
    assert opts["kafka.batch.size"] == "262144"
    assert "kafka.batch.size" not in KafkaSettings("h:9092").spark_options()  # not the source


def test_repr_masks_secrets() -> None:
    s = KafkaSettings(
        "h:1",
        {
            "sasl.password": "hunter2",
            "ssl.truststore.password": "changeit",
            "sasl.jaas.config": 'x password="p4ss";',
            "client.id": "visible",
        },
    )
    for shown in (repr(s), str(s), f"{s}"):
        assert "hunter2" not in shown
        assert "changeit" not in shown
        assert "p4ss" not in shown
        assert "visible" in shown


@pytest.mark.parametrize("text", ["novalue", "=x", ""])
def test_malformed_option_is_named(text: str) -> None:
    with pytest.raises(ConfigError, match="must look like key=value"):
        parse_option(text)


def test_missing_properties_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.properties"
    with pytest.raises(ConfigError, match=f"cannot read Kafka client config {missing}"):
        KafkaSettings.build("h:1", str(missing))
