"""Random bytes through the Spark decoder and the model: each record is scored or dead-lettered
with a known reason, never a crash (JSON, plain Avro, Confluent-framed Avro)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorestream.avro import EVENT_SCHEMA, avro_encoder
from scorestream.contract.reasons import REASONS
from scorestream.contract.synthetic import iter_events
from scorestream.models.registry import Registry
from scorestream.streaming.avro_input import (
    InputFormat,
    limit_decoder_allocations,
    load_writer_schemas,
)
from scorestream.streaming.scoring import ScoringPlan
from scorestream.streaming.source import kafka_row_schema
from scorestream.streaming.validate import REASON, ValidationSettings

HEADER = b"\x00\x00\x00\x00\x01"
EVENT = next(iter(iter_events(1, seed=3))) | {"event_time": 1_767_225_600_000}
VALID = avro_encoder(schema=EVENT_SCHEMA)(EVENT)
# Bytes near the valid encoding (a flipped or cut byte) reach deeper into the decoder.
payloads = st.lists(
    st.binary(max_size=120)
    | st.builds(lambda cut: VALID[:cut], st.integers(0, len(VALID)))
    | st.builds(
        lambda i, b: VALID[:i] + bytes([b]) + VALID[i + 1 :],
        st.integers(0, len(VALID) - 1),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=payloads)
def test_random_bytes_are_scored_or_dead_lettered(
    spark: Any, trained_registry: Registry, values: list[bytes]
) -> None:
    limits = ValidationSettings(max_record_bytes=100)
    limit_decoder_allocations(spark, limits.max_record_bytes)
    entry, model = trained_registry.load("champion")
    formats = {
        "json": (values, None),
        "avro": (values, InputFormat(kind="avro")),
        "confluent-avro": ([HEADER + v for v in values], InputFormat(kind="confluent-avro")),
    }
    for name, (data, fmt) in formats.items():
        rows = [(None, v, "t", 0, i, None, 0) for i, v in enumerate(data)]
        raw = spark.createDataFrame(rows, kafka_row_schema())
        writers = load_writer_schemas(spark, fmt) if fmt is not None else None
        plan = ScoringPlan(raw, model, entry.version, entry.spec, limits, fmt, writers)
        scored = plan.scored(raw)
        got = scored.select(REASON, "score", "_src_offset").collect()
        assert len(got) == len(data), name
        for row in got:
            assert row[REASON] is None or row[REASON] in REASONS, (name, row)
            if row[REASON] is None:
                assert 0.0 <= row["score"] <= 1.0, (name, row)
