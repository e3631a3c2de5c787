"""The sink's database URLs (both spellings, secrets never shown), table names, and which score
records it can use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scorestream.errors import ConfigError
from scorestream.producers.encoding import decode_json
from scorestream.serve.settings import ServeSettings
from scorestream.sink.db import Row, Table
from scorestream.sink.run import to_row
from scorestream.sink.target import check_table, parse_url

SECRET = "pa55-" + "w0rd"  # a made-up password the output must never show


@pytest.mark.parametrize(
    "url",
    [
        f"jdbc:postgresql://db.example:5433/app?user=scorer&password={SECRET}",
        f"postgresql://scorer:{SECRET}@db.example:5433/app",
    ],
)
def test_postgres_urls_connect_with_libpq_and_never_show_the_password(url: str) -> None:
    target = parse_url(url)
    assert target.kind == "postgresql"
    assert not target.connect.startswith("jdbc:")
    assert target.password == SECRET
    shown = f"{target} {target!r} {target.describe()}"
    assert SECRET not in shown and "scorer" not in shown
    assert target.describe() == "postgresql at db.example:5433/app"
    assert SECRET not in target.scrub(f"failed for {target.connect} with {SECRET}")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("jdbc:sqlite:/srv/data/s.db", "/srv/data/s.db"),
        ("sqlite:///srv/data/s.db", "/srv/data/s.db"),
    ],
)
def test_sqlite_urls_give_the_file(url: str, path: str) -> None:
    target = parse_url(url)
    assert (target.kind, target.connect) == ("sqlite", path)


def test_unknown_scheme_names_the_scheme_not_the_url() -> None:
    with pytest.raises(ConfigError, match="'mysql'") as err:
        parse_url(f"jdbc:mysql://u:{SECRET}@h/db")
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("name", ["scores", "public.scores", "_s1"])
def test_table_names_that_are_plain_identifiers_pass(name: str) -> None:
    assert check_table(name) == name


@pytest.mark.parametrize("name", ['scores"; DROP TABLE x; --', "1abc", "a.b.c", ""])
def test_other_table_names_fail_naming_the_value(name: str) -> None:
    with pytest.raises(ConfigError, match="table name"):
        check_table(name)


def test_upsert_only_moves_rows_forward_on_their_partition() -> None:
    sql = Table(parse_url("jdbc:sqlite:/srv/data/x.db"), "public.scores").upsert_sql
    assert sql.startswith('INSERT INTO "public"."scores" AS cur')
    assert "ON CONFLICT (event_id) DO UPDATE" in sql
    assert "excluded.kafka_offset >= cur.kafka_offset" in sql


class _Message:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return 42


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "DECODE_ERROR"),
        (json.dumps({"score": 0.5}).encode(), "MISSING_FIELD"),
        (json.dumps({"event_id": "e", "score": "high"}).encode(), "WRONG_TYPE"),
        (b'{"event_id": "e", "score": NaN}', "WRONG_TYPE"),
    ],
)
def test_unusable_score_records_get_a_reason(value: bytes, reason: str) -> None:
    got: Any = to_row(_Message(value), decode_json)
    assert isinstance(got, tuple) and got[0] == reason


def test_a_score_record_becomes_a_row_with_its_position() -> None:
    record = {"event_id": 7, "score": 0.25, "prediction": 0.0, "model_version": 3}
    row = to_row(_Message(json.dumps(record).encode()), decode_json)
    assert row == Row("7", 0.25, 0.0, 3, None, None, 1, 42)


@pytest.mark.parametrize(
    ("field", "value"), [("timeout_s", 0.0), ("max_in_flight", 0), ("input_topic", "scores")]
)
def test_serve_settings_refuse_unusable_values(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        ServeSettings(**{field: value})


def test_batch_jdbc_url_error_never_shows_the_url() -> None:
    from scorestream.models.batch import BatchSettings

    with pytest.raises(ConfigError) as info:
        BatchSettings(input="x.csv", jdbc_url="postgresql://u:hunter2@db/x", jdbc_table="t")
    assert "hunter2" not in str(info.value)
    assert "'postgresql'" in str(info.value)
