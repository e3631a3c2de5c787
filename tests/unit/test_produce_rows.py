"""Rows of users' files typed for `produce --from`, the progress display, and the Schema
Registry settings (no JVM, no broker)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from scorestream.avro import EVENT_SCHEMA, read_schema
from scorestream.cli.producers import publishing
from scorestream.errors import ConfigError
from scorestream.kafka import KafkaSettings
from scorestream.producers.rows import RowError, file_format, read_rows, schema_fields
from scorestream.progress import Progress
from scorestream.schema_registry import SchemaRegistrySettings

FIELDS = schema_fields(read_schema(EVENT_SCHEMA))


def _rows(path: Path, fmt: str) -> list[tuple[str, object]]:
    return list(read_rows(path, fmt, FIELDS))


def test_csv_values_are_typed_and_line_numbers_count_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "event_id,amount,merchant_category,is_online\n"
        'a,12.5,"two\nlines",1\n'
        "b,,grocery,0\n"
        "c,1e3x,grocery,1\n"
    )
    rows = _rows(path, "csv")
    assert [where for where, _ in rows] == [f"{path}:2", f"{path}:4", f"{path}:5"]
    first, second, third = (row for _, row in rows)
    assert first == {
        "event_id": "a",
        "amount": 12.5,
        "merchant_category": "two\nlines",
        "country": None,
        "hour_of_day": None,
        "distance_from_home_km": None,
        "card_age_days": None,
        "is_online": 1.0,
        "transactions_last_24h": None,
    }
    assert isinstance(second, dict) and second["amount"] is None  # empty: null
    assert isinstance(third, RowError)
    assert str(third) == f"{path}:5, column 'amount': '1e3x' is not a number"


def test_json_lines_keep_json_types(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"event_id": "a", "amount": 3, "event_time": "2026-01-01T00:00:01Z"}\n'
        "\n"
        '{"event_id": "b", "amount": "3"}\n'
        '{"event_id": 7}\n'
        "[1, 2]\n"
    )
    rows = dict(_rows(path, "jsonl"))
    good = rows[f"{path}:1"]
    assert isinstance(good, dict)
    assert good["amount"] == 3.0 and isinstance(good["amount"], float)
    assert good["event_time"] == 1_767_225_601_000
    assert "is not a number" in str(rows[f"{path}:3"])  # text is not a number in JSON
    assert str(rows[f"{path}:4"]) == f"{path}:4, column 'event_id': 7 is not text"
    assert "a JSON list, expected an object" in str(rows[f"{path}:5"])


def test_a_required_column_missing_from_the_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("amount\n1\n")
    with pytest.raises(ConfigError, match="has no column 'event_id', which the schema requires"):
        _rows(path, "csv")


def test_file_format_by_extension_or_flag(tmp_path: Path) -> None:
    assert file_format(Path("x.ndjson")) == "jsonl"
    assert file_format(Path("x.PARQUET")) == "parquet"
    assert file_format(Path("x.txt"), "csv") == "csv"
    with pytest.raises(ConfigError, match=r"--from-format csv\|jsonl\|parquet"):
        file_format(Path("x.txt"))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal_and_plain_lines_otherwise() -> None:
    tty = _Tty()
    publishing(Progress(tty), 4000)(1000, 1.0)
    assert tty.getvalue().startswith(
        "\r[########......................]  25% published 1,000/4,000"
    )
    plain = io.StringIO()
    line = Progress(plain)
    show = publishing(line, 4000)
    for sent in (1000, 2000, 3000, 4000):
        show(sent, sent / 1000)  # within the log interval: one line, not four
    line.done("published 4000 events to t")
    assert plain.getvalue().splitlines() == [
        "published 1,000/4,000 (1,000/s)",
        "published 4000 events to t",
    ]


def test_registry_settings_from_client_properties_keep_secrets_out(tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text(
        "security.protocol=SASL_SSL\n"
        "schema.registry.url=https://sr.example:8081\n"
        "basic.auth.credentials.source=USER_INFO\n"
        "basic.auth.user.info=svc:Top-Secret-1\n"
        "schema.registry.ssl.ca.location=/etc/ca.pem\n"
    )
    kafka = KafkaSettings.build("b:9092", str(props))
    assert kafka.options == {"security.protocol": "SASL_SSL"}  # librdkafka never sees them
    from scorestream.kafka import read_properties

    registry = SchemaRegistrySettings.build("", read_properties(props), ["timeout=5"])
    assert registry is not None and registry.url == "https://sr.example:8081"
    config = registry.client_config()
    assert config["basic.auth.user.info"] == "svc:Top-Secret-1"
    assert config["ssl.ca.location"] == "/etc/ca.pem" and config["timeout"] == 5.0
    assert "basic.auth.credentials.source" not in config
    assert "Top-Secret-1" not in repr(registry) and "Top-Secret-1" not in str(registry)
    in_url = SchemaRegistrySettings("https://svc:Url-Secret-2@sr.example:8081")
    assert "Url-Secret-2" not in repr(in_url) and "svc:***@sr.example:8081" in in_url.shown_url
    with pytest.raises(ConfigError, match="unknown Schema Registry options"):
        SchemaRegistrySettings("https://sr", {"ssl.truststore.location": "x.jks"})
    with pytest.raises(ConfigError, match="no registry URL"):
        SchemaRegistrySettings.build("", {"basic.auth.user.info": "a:b"})
    assert SchemaRegistrySettings.build("") is None


def _score_args(*argv: str) -> object:
    from scorestream.cli import build_parser

    return build_parser().parse_args(["score", *argv])


def test_score_flags_with_a_registry_are_checked_before_spark_starts(tmp_path: Path) -> None:
    from scorestream.cli.streaming import scorer_settings
    from scorestream.streaming.realtime import RealtimeSettings, check_settings

    url = "https://sr.example:8081"
    both = scorer_settings(
        _score_args(
            "--input-format", "confluent-avro", "--output-format", "confluent-avro",
            "--schema-registry", url, "--schema-registry-option", "ssl.ca.location=/ca.pem",
        )  # type: ignore[arg-type]
    )  # fmt: skip
    assert both.input_format.registry is not None and both.input_format.registry.url == url
    assert both.output_format.registry == both.input_format.registry
    assert both.input_format.registry.options == {"ssl.ca.location": "/ca.pem"}
    out_only = scorer_settings(
        _score_args("--output-format", "confluent-avro", "--schema-registry", url)  # type: ignore[arg-type]
    )
    assert out_only.input_format.registry is None and out_only.output_format.registry is not None
    with pytest.raises(ConfigError, match="serves confluent-avro, but the input format is 'json'"):
        scorer_settings(_score_args("--schema-registry", url))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--output-schema-id 7 and --schema-registry"):
        scorer_settings(
            _score_args(
                "--output-format", "confluent-avro", "--output-schema-id", "7",
                "--schema-registry", url,
            )  # type: ignore[arg-type]
        )  # fmt: skip
    with pytest.raises(ConfigError, match="not both"):
        scorer_settings(
            _score_args(
                "--input-format", "confluent-avro", "--schema-dir", str(tmp_path),
                "--schema-registry", url,
            )  # type: ignore[arg-type]
        )  # fmt: skip
    with pytest.raises(ConfigError, match="--schema-registry needs micro-batch mode"):
        check_settings(both, RealtimeSettings())
