"""Exactly-once keeps its word after a crash between the transaction commit and Spark's
checkpoint commit, after an older checkpoint is restored, and with a backlog.

- crash: `scorestream score --exactly-once` exits hard (test hook) right after batch 1's
  transaction committed, before Spark committed batch 1 to its checkpoint; the restart replays
  batch 1, sees from the marker's end offsets that it was published, skips it and says so; a
  read_committed consumer sees every event once.
- restore: the checkpoint is copied after 1,000 events, 1,000 more are scored, the copy is put
  back and 1,000 more arrive: the replayed batch (an "old" batch id) now reaches past what was
  published; only its unpublished part is published: 3,000 events, each once.
- backlog: with no --max-offsets-per-trigger, exactly-once mode bounds each batch by itself.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from streamkit import EVENT_TIME, kill_group, read_ids, scorer_process, wait_for

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.streaming.exactly_once import CRASH_EXIT_CODE
from scorestream.streaming.job import Scorer
from scorestream.streaming.settings import ScorerSettings


def _events(n: int, seed: int, first: int = 0) -> list[dict[str, Any]]:
    return [
        e | {"event_id": f"{seed}-{first + i}", "event_time": EVENT_TIME + first + i}
        for i, e in enumerate(iter_events(n, seed))
    ]


def _check_once(read: list[str], wanted: set[str]) -> None:
    ids = Counter(read)
    duplicates = sum(n - 1 for n in ids.values())
    missing = wanted - set(ids)
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:3]}"
    assert duplicates == 0, f"{duplicates} duplicates under read_committed"
    assert len(read) == len(wanted)


@pytest.mark.timeout(1200)
def test_crash_after_the_commit_before_the_checkpoint_is_replayed_as_a_skip(
    kafka: KafkaSettings, trained_registry: Registry, topic_factory: Any, tmp_path: Path
) -> None:
    source, output = topic_factory("eo-crash-in"), topic_factory("eo-crash-out")
    events = _events(3_000, 71)
    assert publish(kafka, ProduceSettings(topic=source), events) == len(events)
    args = [
        "--bootstrap", kafka.bootstrap, "--registry", str(trained_registry.root),
        "--input-topic", source, "--output-topic", output,
        "--checkpoint", str(tmp_path / "checkpoint"), "--max-offsets-per-trigger", "1000",
        "--master", "local[2]", "--driver-memory", "1g", "--metrics-port", "0",
        "--drift", "false", "--shadow", "false", "--exactly-once",
    ]  # fmt: skip
    log = tmp_path / "scorer.log"
    proc = scorer_process(args, log, {"SCORESTREAM_TEST_CRASH_AFTER_COMMIT": "1"})
    try:
        code = proc.wait(timeout=600)
    finally:
        kill_group(proc)  # the JVM too, whatever happened
    text = log.read_text()
    assert code == CRASH_EXIT_CODE, f"exit {code}:\n{text[-3000:]}"
    assert "exiting after the commit of batch 1, before Spark's checkpoint commit" in text
    # Batch 1 is in Spark's offset log but not committed: the restart must replay it.
    assert (tmp_path / "checkpoint" / "offsets" / "1").exists()
    assert not (tmp_path / "checkpoint" / "commits" / "1").exists()

    proc = scorer_process(args, log, {})
    try:
        read = read_ids(
            kafka,
            output,
            {e["event_id"] for e in events},
            quiet_s=8.0,
            timeout_s=600,
            isolation="read_committed",
        )
    finally:
        kill_group(proc)
    _check_once(read, {e["event_id"] for e in events})
    restarted = log.read_text()[len(text) :]
    assert "exactly-once: batch 1: its offsets were published before" in restarted, restarted[
        -3000:
    ]
    assert "replay skipped" in restarted


@pytest.mark.timeout(1200)
def test_restoring_an_older_checkpoint_publishes_what_was_not_published(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scorestream.streaming.job")
    source, output = topic_factory("eo-restore-in"), topic_factory("eo-restore-out")
    checkpoint, saved = tmp_path / "checkpoint", tmp_path / "saved-checkpoint"
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=trained_registry.root,
        checkpoint=checkpoint,
        exactly_once=True,
        exactly_once_batch_records=250,  # the default bound, small for the test
    )
    published: list[dict[str, Any]] = []

    def run(n: int, first: int, **changes: Any) -> Scorer:
        events = _events(n, 72, first)
        assert publish(kafka, ProduceSettings(topic=source), events) == n
        published.extend(events)
        scorer = Scorer(spark, kafka, replace(settings, **changes))
        scorer.start()
        try:
            scorer.wait_ready()
            wait_for(scorer, n, timeout_s=400)
            scorer.settle()
        finally:
            scorer.stop()
        return scorer

    first = run(1_000, 0)
    # No --max-offsets-per-trigger, yet the backlog of 1,000 came in batches of 250.
    assert first.totals.batches >= 4 and first.totals.records_in == 1_000
    shutil.copytree(checkpoint, saved)
    run(1_000, 1_000)
    shutil.rmtree(checkpoint)
    shutil.copytree(saved, checkpoint)  # the older checkpoint is back
    started = time.monotonic()
    third = run(1_000, 2_000, exactly_once_batch_records=10_000)
    # Its first batch has an id already committed but reaches offset 3,000: 1,000 to publish.
    assert third.totals.records_in == 1_000, third.totals
    wanted = {e["event_id"] for e in published}
    read = read_ids(kafka, output, wanted, quiet_s=5.0, timeout_s=300, isolation="read_committed")
    _check_once(read, wanted)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "overlaps what was published up to batch" in text, text[-2000:]
    assert "those records are skipped, the rest is published" in text
    print(f"\nrestore run: {time.monotonic() - started:.0f} s (machine shared, under load)")
