"""Property tests of the event and score contracts: each encoder round-trips via its decoder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorestream.avro import (
    EVENT_SCHEMA,
    SCORE_SCHEMA,
    avro_decoder,
    avro_encoder,
    frame,
    read_schema,
    unframe,
)
from scorestream.errors import ConfigError, DataError
from scorestream.producers.encoding import decode_json, decoder, encode_json, encoder, parse_time

NUMERIC = (
    "amount",
    "hour_of_day",
    "distance_from_home_km",
    "card_age_days",
    "is_online",
    "transactions_last_24h",
)
maybe_float = st.none() | st.floats(allow_nan=True, allow_infinity=True)
maybe_text = st.none() | st.text(max_size=30)
events = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=40),
        # Years 1970..2200 in epoch milliseconds.
        "event_time": st.integers(min_value=0, max_value=7_258_118_400_000),
        "merchant_category": maybe_text,
        "country": maybe_text,
        **{name: maybe_float for name in NUMERIC},
    }
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def assert_same_event(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert same(got[key], value), (key, got[key], value)


@given(events)
def test_json_round_trip(event: dict[str, Any]) -> None:
    back = decode_json(encode_json(event))
    # JSON carries the event time as ISO-8601 text with milliseconds.
    assert round(parse_time(back.pop("event_time")) * 1000) == event["event_time"]
    assert_same_event(back, {k: v for k, v in event.items() if k != "event_time"})


@pytest.mark.parametrize("fmt", ["avro", "confluent-avro"])
@given(event=events)
def test_avro_round_trip(fmt: str, event: dict[str, Any]) -> None:
    data = encoder(fmt, schema_id=42)(event)
    confluent = fmt == "confluent-avro"
    if confluent:
        assert data[0] == 0
        assert int.from_bytes(data[1:5], "big") == 42
    assert_same_event(avro_decoder(confluent=confluent)(data), event)


@given(st.integers(min_value=0, max_value=2**31 - 1), st.binary(max_size=64))
def test_confluent_header_round_trip(schema_id: int, body: bytes) -> None:
    assert unframe(frame(schema_id, body)) == (schema_id, body)


@given(st.binary(max_size=4) | st.binary(min_size=5).filter(lambda b: b[0] != 0))
def test_unframed_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(DataError, match="Confluent wire format"):
        unframe(data)


@pytest.mark.parametrize("confluent", [False, True])
@given(data=st.binary(max_size=200))
def test_random_bytes_decode_or_raise_data_error(confluent: bool, data: bytes) -> None:
    """Random bytes either decode to a record or raise our DataError, nothing else."""
    try:
        record = avro_decoder(confluent=confluent)(data)
    except DataError:
        return
    assert isinstance(record["event_id"], str)


@settings(max_examples=50)
@given(events)
def test_score_records_round_trip_in_every_format(event: dict[str, Any]) -> None:
    score = {
        "event_id": event["event_id"],
        "score": 0.25,
        "prediction": 0.0,
        "model_version": 3,
        "event_time": event["event_time"],
        "scored_at": event["event_time"] + 5,
    }
    schema = read_schema(SCORE_SCHEMA)
    for fmt in ("avro", "confluent-avro"):
        data = avro_encoder(confluent=fmt == "confluent-avro", schema=schema)(score)
        assert decoder(fmt)(data) == score
    assert decoder("json")(json.dumps(score).encode()) == score


def _evolved(tmp_path: Path) -> tuple[Path, Path]:
    base = read_schema(EVENT_SCHEMA)
    newer = json.loads(json.dumps(base))
    newer["fields"].append({"name": "channel", "type": "string", "default": "web"})
    older = json.loads(json.dumps(base))
    older["fields"] = [f for f in older["fields"] if f["name"] != "country"]
    (tmp_path / "newer.avsc").write_text(json.dumps(newer))
    (tmp_path / "older.avsc").write_text(json.dumps(older))
    return tmp_path / "newer.avsc", tmp_path / "older.avsc"


def test_schema_evolution_both_ways(tmp_path: Path) -> None:
    newer, older = _evolved(tmp_path)
    event = {
        "event_id": "e-1",
        "event_time": 1_767_225_600_000,
        "amount": 12.5,
        "merchant_category": "fuel",
        "country": "DE",
        "hour_of_day": 3.0,
        "distance_from_home_km": 1.0,
        "card_age_days": 40.0,
        "is_online": 1.0,
        "transactions_last_24h": 2.0,
    }
    # A newer writer added a field: the reader skips it.
    data = avro_encoder(schema=newer)({**event, "channel": "app"})
    assert avro_decoder(writer=newer, reader=EVENT_SCHEMA)(data) == event
    # An older writer lacks `country`: the reader fills the default (null).
    data = avro_encoder(schema=older)({k: v for k, v in event.items() if k != "country"})
    assert avro_decoder(writer=older, reader=EVENT_SCHEMA)(data) == {**event, "country": None}


def test_confluent_ids_resolve_from_a_schema_directory(tmp_path: Path) -> None:
    newer, older = _evolved(tmp_path)
    schemas = tmp_path / "ids"
    schemas.mkdir()
    (schemas / "7.avsc").write_text(newer.read_text())
    (schemas / "8.avsc").write_text(older.read_text())
    decode = avro_decoder(confluent=True, reader=EVENT_SCHEMA, schema_dir=schemas)
    event = {"event_id": "e", "event_time": 5, **{n: 1.0 for n in NUMERIC}}
    event |= {"merchant_category": "fuel", "country": "FR"}
    got = decode(avro_encoder(True, newer, 7)({**event, "channel": "pos"}))
    assert got == event
    got = decode(avro_encoder(True, older, 8)({k: v for k, v in event.items() if k != "country"}))
    assert got == {**event, "country": None}
    with pytest.raises(DataError, match=r"schema id 9 is not in .* \(known: \[7, 8\]\)"):
        decode(avro_encoder(True, older, 9)(event))


def test_bad_format_and_schema_messages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown event format 'xml'; expected json, avro"):
        encoder("xml")
    with pytest.raises(ConfigError, match="unknown record format 'csv'"):
        decoder("csv")
    with pytest.raises(ConfigError, match=r"cannot read Avro schema .*nope\.avsc"):
        avro_encoder(schema=tmp_path / "nope.avsc")
    (tmp_path / "bad.avsc").write_text('{"type": "record", "name": "x", "fields": [{"a": 1}]}')
    with pytest.raises(ConfigError, match="is not valid"):
        avro_encoder(schema=tmp_path / "bad.avsc")
    with pytest.raises(DataError, match="does not fit the Avro schema"):
        avro_encoder()({"event_id": 5})
