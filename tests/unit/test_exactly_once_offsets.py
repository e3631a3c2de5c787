"""Exactly-once bookkeeping without a broker: Spark's offset log read, a batch's offsets compared
with the last marker (skip, publish the rest, or refuse a gap), and the default batch bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorestream.errors import ScorestreamError
from scorestream.streaming.exactly_once import (
    EXACTLY_ONCE_MAX_OFFSETS,
    advance,
    batch_offsets,
    coverage,
)
from scorestream.streaming.settings import ScorerSettings


def test_batch_offsets_read_from_sparks_offset_log(tmp_path: Path) -> None:
    (tmp_path / "offsets").mkdir()
    (tmp_path / "offsets" / "3").write_text(
        'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1,"conf":{}}\n{"in":{"1":250,"0":240}}\n'
    )
    assert batch_offsets(tmp_path, 3, "in") == {"in": {0: 240, 1: 250}}
    assert batch_offsets(tmp_path, 4, "in") is None
    with pytest.raises(ScorestreamError, match=r"holds no offsets of topic 'other'"):
        batch_offsets(tmp_path, 3, "other")


PUBLISHED = {"in": {0: 100, 1: 200}}


def test_a_replay_of_published_offsets_is_skipped() -> None:
    found = coverage(5, {"in": {0: 50, 1: 150}}, {"in": {0: 100, 1: 200}}, 5, PUBLISHED)
    assert found.skip and "published before" in found.note


def test_a_new_batch_starting_where_the_marker_ends_is_published_whole() -> None:
    found = coverage(6, {"in": {0: 100, 1: 200}}, {"in": {0: 130, 1: 260}}, 5, PUBLISHED)
    assert not found.skip and found.published == {} and found.note == ""


def test_an_older_checkpoint_with_a_larger_batch_publishes_only_the_rest() -> None:
    # Batch 3 of a restored checkpoint reaches past what batch 5 had published: the batch id is
    # "old" but its records above the marker's offsets were never published.
    found = coverage(3, {"in": {0: 40, 1: 100}}, {"in": {0: 300, 1: 400}}, 5, PUBLISHED)
    assert not found.skip
    assert found.published == {"in": {0: 100, 1: 200}}
    assert "in/0 below 100" in found.note and "skipped, the rest is published" in found.note


def test_a_batch_starting_above_the_marker_is_refused_naming_the_gap() -> None:
    with pytest.raises(ScorestreamError, match=r"in/1 offsets 200\.\.209 would never be"):
        coverage(6, {"in": {0: 100, 1: 210}}, {"in": {0: 120, 1: 230}}, 5, PUBLISHED)


def test_a_partition_the_marker_does_not_know_is_new() -> None:
    found = coverage(6, {"in": {0: 100, 2: 0}}, {"in": {0: 100, 2: 7}}, 5, PUBLISHED)
    assert not found.skip


def test_markers_without_offsets_fall_back_to_batch_ids() -> None:
    assert coverage(5, None, {"in": {0: 1}}, 5, None).skip
    assert not coverage(6, None, {"in": {0: 1}}, 5, None).skip


def test_advance_keeps_the_larger_offset_per_partition() -> None:
    assert advance(PUBLISHED, {"in": {0: 90, 1: 250, 2: 5}}) == {"in": {0: 100, 1: 250, 2: 5}}
    assert advance(None, {"in": {0: 1}}) == {"in": {0: 1}}
    assert advance(PUBLISHED, None) == PUBLISHED


def test_exactly_once_bounds_each_batch_unless_the_user_did() -> None:
    assert ScorerSettings().offsets_per_trigger is None
    assert ScorerSettings(exactly_once=True).offsets_per_trigger == EXACTLY_ONCE_MAX_OFFSETS
    bounded = ScorerSettings(exactly_once=True, max_offsets_per_trigger=500)
    assert bounded.offsets_per_trigger == 500
