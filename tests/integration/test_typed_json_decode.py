"""JSON is decoded typed first: well-formed records skip the text read, and every record gets
the same typed values, reason and message as the text-only read gives."""

from __future__ import annotations

import json
import math
from typing import Any

from scorestream.contract.synthetic import SPEC, iter_events
from scorestream.streaming.validate import (
    MESSAGE,
    REASON,
    ValidationSettings,
    decode_json,
    validate,
)

GOOD = 40
EVENT_TIME = "2026-11-21T10:15:00.123Z"


def _values() -> list[bytes | None]:
    good = []
    for i, event in enumerate(iter_events(GOOD, seed=5)):
        event["event_time"] = EVENT_TIME if i % 2 else 1_763_720_100_123 + i  # ISO and millis
        good.append(json.dumps(event).encode())
    base = json.loads(good[1])

    def variant(**change: Any) -> bytes:
        event = {**base, **change}
        return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()

    odd = [
        variant(amount="12.5"),  # a number sent as text still scores
        variant(amount="12 euros"),
        variant(amount=""),
        variant(amount=True),
        variant(amount={"value": 1}),
        variant(amount=None),  # optional: imputed
        variant(amount=...),
        variant(amount=-1.0),
        variant(hour_of_day=24.5),
        variant(amount="NaN"),
        variant(amount="+INF"),
        variant(event_time=1_700_000_000),  # epoch seconds
        variant(event_time="1763720100123"),
        variant(event_time="yesterday"),
        variant(event_time=-0),
        variant(event_time=12345678901234567890123),
        variant(event_id=None),
        variant(merchant_category=7),
        variant(country=["DE"]),
        b'{"amount": NaN, "event_id": "x", "event_time": "2026-11-21T10:15:00Z"}',
        b'{"amount": 1e999, "event_id": "x", "event_time": "2026-11-21T10:15:00Z"}',
        b'{"event_id": "d", "event_time": 1763720100123, "amount": 1, "amount": "s"}',
        b'{"event_id": "d", "event_time": 1763720100123, "amount": "s", "amount": 2}',
        b"[1, 2]",
        b"",
        b"\xff\xfe not json",
        b'{"event_id": "t"} trailing',
        None,
    ]
    return [*good, *odd]


def _kafka_rows(spark: Any, values: list[bytes | None]) -> Any:
    schema = (
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    return spark.createDataFrame(
        [(None, v, "in", 0, i, None) for i, v in enumerate(values)], schema
    )


def _comparable(row: Any) -> tuple[Any, ...]:
    return tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row)


def test_typed_read_equals_the_text_read_and_skips_it_for_clean_records(spark: Any) -> None:
    from pyspark.sql import functions as F

    settings = ValidationSettings()
    raw = _kafka_rows(spark, _values())
    typed = validate(decode_json(SPEC, settings), SPEC, settings)
    text = validate(decode_json(SPEC, settings, typed=False), SPEC, settings)
    order = F.col("_src_offset")
    got = [_comparable(r) for r in typed.apply(raw).orderBy(order).collect()]
    want = [_comparable(r) for r in text.apply(raw).orderBy(order).collect()]
    assert typed.columns == text.columns
    assert len(got) == len(want) == len(_values())
    for a, b in zip(got, want, strict=True):
        assert a == b

    # The well-formed records are read once, typed; only the others are read as text.
    first_two = raw
    for step in typed.steps[:2]:
        first_two = first_two.select(*step)
    read_as_text = {r["_src_offset"] for r in first_two.where(F.col("_json").isNotNull()).collect()}
    assert not read_as_text & set(range(GOOD))
    assert GOOD in read_as_text  # "12.5" as a string
    assert GOOD + 1 in read_as_text  # "12 euros"

    # And the reasons are the ones the text read always gave.
    reasons = {
        r["_src_offset"]: (r[REASON], r[MESSAGE])
        for r in typed.apply(raw).select("_src_offset", REASON, MESSAGE).collect()
    }
    assert all(reasons[i] == (None, None) for i in range(GOOD))
    assert reasons[GOOD] == (None, None)
    assert reasons[GOOD + 1] == ("WRONG_TYPE", "feature 'amount' is 12 euros, expected a number")
    assert reasons[GOOD + 2] == ("WRONG_TYPE", "feature 'amount' is , expected a number")
    assert reasons[GOOD + 5] == (None, None)
    assert reasons[GOOD + 7][0] == "OUT_OF_RANGE"
    assert reasons[GOOD + 9][0] == "NOT_FINITE"
    assert reasons[GOOD + 11][0] == "OUT_OF_RANGE"
    assert "epoch seconds" in reasons[GOOD + 11][1]
    assert reasons[GOOD + 16][0] == "MISSING_FIELD"
    assert reasons[GOOD + 23][0] == "DECODE_ERROR"
