"""Exactly-once when an executor task dies mid-transaction: the task publishing input partition
0 of batch 1 sends part of its records and exits its Python worker before committing (test
hook); Spark retries the task, whose producer fences the dead attempt (its transaction is
aborted) and publishes the partition again. A read_committed consumer of the score and
dead-letter topics then sees every input record exactly once, by source partition and offset.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from streamkit import EVENT_TIME, headers, kill_group, read_quiet, scorer_process

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.encoding import encode_json
from scorestream.producers.publisher import Publisher
from scorestream.streaming.scoring import H_OFFSET, H_PARTITION

EVENTS = 3_000
BAD_EVERY = 10  # every 10th record is not JSON: a dead letter
CRASH_AFTER = 200  # records the dying attempt sends before it exits


def _coordinates(messages: list[Any]) -> list[tuple[int, int]]:
    return [(int(headers(m)[H_PARTITION]), int(headers(m)[H_OFFSET])) for m in messages]


@pytest.mark.timeout(900)
def test_task_killed_mid_transaction_is_retried_and_each_record_published_once(
    kafka: KafkaSettings, trained_registry: Registry, topic_factory: Any, tmp_path: Path
) -> None:
    source, output = topic_factory("eo-task-in"), topic_factory("eo-task-out")
    dead_letters = f"{source}.dlq"
    events = [e | {"event_time": EVENT_TIME + i} for i, e in enumerate(iter_events(EVENTS, 81))]
    with Publisher(kafka) as pub:
        for i, event in enumerate(events):
            key = event["event_id"].encode()
            pub.send(source, b"{not json" if i % BAD_EVERY == 0 else encode_json(event), key=key)
        pub.flush()
    bad = len(range(0, EVENTS, BAD_EVERY))
    args = [
        "--bootstrap", kafka.bootstrap, "--registry", str(trained_registry.root),
        "--input-topic", source, "--output-topic", output,
        "--checkpoint", str(tmp_path / "checkpoint"), "--max-offsets-per-trigger", "1000",
        # local[2, 4]: Spark retries a failed task up to 4 times, as on a cluster.
        "--master", "local[2,4]", "--driver-memory", "1g", "--metrics-port", "0",
        "--drift", "false", "--shadow", "false", "--exactly-once",
    ]  # fmt: skip
    log = tmp_path / "scorer.log"
    crash = {"SCORESTREAM_TEST_CRASH_IN_TASK": f"1:0:{CRASH_AFTER}"}
    proc = scorer_process(args, log, crash)
    try:
        scores = read_quiet(
            kafka, output, EVENTS - bad, quiet_s=8.0, timeout_s=600, isolation="read_committed"
        )
        dead = read_quiet(
            kafka, dead_letters, bad, quiet_s=2.0, timeout_s=120, isolation="read_committed"
        )
        assert proc.poll() is None, f"the scorer exited:\n{log.read_text()[-3000:]}"
    finally:
        kill_group(proc)
    text = log.read_text()
    assert f"task exits mid-transaction after {CRASH_AFTER} records" in text, text[-3000:]
    # Every input record once: scored or dead-lettered, none twice, none lost.
    published = Counter(_coordinates(scores) + _coordinates(dead))
    twice = {c: n for c, n in published.items() if n > 1}
    assert not twice, f"{len(twice)} input records published twice, e.g. {list(twice)[:3]}"
    assert len(scores) == EVENTS - bad and len(dead) == bad
    assert len(published) == EVENTS
    assert len({m.key() for m in scores}) == EVENTS - bad  # by event id, too
    # The dead attempt's records are on the broker, aborted: read_uncommitted sees them.
    everything = read_quiet(kafka, output, EVENTS - bad, quiet_s=2.0, timeout_s=120)
    everything += read_quiet(kafka, dead_letters, bad, quiet_s=2.0, timeout_s=60)
    assert len(everything) >= EVENTS + CRASH_AFTER, len(everything)
