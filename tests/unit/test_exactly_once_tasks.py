"""Exactly-once on the executors without a broker: a task's Arrow rows split into runs of one
input partition, the test hook's parsing, the refusal of a split partition, the ids."""

from __future__ import annotations

import pyarrow as pa
import pytest

from scorestream.errors import ConfigError, ScorestreamError
from scorestream.streaming.exactly_once_tasks import (
    TaskCrash,
    _by_partition,
    _rows,
    transactional_id,
)
from scorestream.streaming.settings import ScorerSettings, validate_settings

HEADERS = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))


def _batch(rows: list[tuple[int, int]]) -> pa.RecordBatch:
    """Sink rows of (source partition, source offset), as mapInArrow hands them to a task."""
    return pa.RecordBatch.from_pydict(
        {
            "topic": ["out"] * len(rows),
            "key": [f"k{o}".encode() for _, o in rows],
            "value": [None if o % 2 else b"v" for _, o in rows],
            "headers": [[{"key": "h", "value": None}] for _ in rows],
            "_src_topic": ["in"] * len(rows),
            "_src_partition": [p for p, _ in rows],
            "_src_offset": [o for _, o in rows],
        },
        schema=pa.schema(
            [
                ("topic", pa.string()),
                ("key", pa.binary()),
                ("value", pa.binary()),
                ("headers", HEADERS),
                ("_src_topic", pa.string()),
                ("_src_partition", pa.int32()),
                ("_src_offset", pa.int64()),
            ]
        ),
    )


def test_rows_of_a_task_come_in_runs_of_one_input_partition() -> None:
    batches = [_batch([(0, 5), (0, 6)]), _batch([(0, 7), (1, 3), (1, 4)])]
    runs = {where: list(rows) for where, rows in _by_partition(_rows(batches))}
    assert list(runs) == [("in", 0), ("in", 1)]
    assert [o for o, _ in runs["in", 0]] == [5, 6, 7]
    assert [o for o, _ in runs["in", 1]] == [3, 4]
    offset, (topic, key, value, headers) = runs["in", 1][0]
    assert (offset, topic, key, value, headers) == (3, "out", b"k3", None, [("h", b"")])


def test_a_run_left_unread_does_not_lose_the_next_one() -> None:
    groups = _by_partition(_rows([_batch([(0, 1), (0, 2), (1, 9)])]))
    first, _unread = next(groups)
    second, rows = next(groups)
    assert (first, second) == (("in", 0), ("in", 1))
    assert [o for o, _ in rows] == [9]


def test_an_input_partition_met_twice_in_a_task_is_refused() -> None:
    groups = _by_partition(_rows([_batch([(0, 1), (1, 2), (0, 3)])]))
    with pytest.raises(ScorestreamError, match=r"input partition in/0 are not contiguous"):
        for _where, rows in groups:
            list(rows)


def test_crash_hook_parsed_and_bad_values_named() -> None:
    assert TaskCrash.parse("1:0:200") == TaskCrash(1, 0, 200)
    with pytest.raises(ConfigError, match=r"SCORESTREAM_TEST_CRASH_IN_TASK='1:x' is not valid"):
        TaskCrash.parse("1:x")


def test_each_input_partition_has_its_own_transactional_id() -> None:
    ids = {transactional_id("scorestream-q", "in", p) for p in range(3)}
    assert ids == {"scorestream-q-in-0", "scorestream-q-in-1", "scorestream-q-in-2"}


def test_min_partitions_refused_with_exactly_once() -> None:
    settings = ScorerSettings(exactly_once=True, min_partitions=4)
    with pytest.raises(ConfigError, match=r"--min-partitions 4 and --exactly-once"):
        validate_settings(settings)
    validate_settings(ScorerSettings(min_partitions=4))  # at-least-once may split
