"""The exactly-once sink on the real broker: a committed batch is skipped when replayed, an
unfinished transaction is fenced and never seen by read_committed consumers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from streamkit import read_quiet

from scorestream.errors import StackError
from scorestream.kafka import KafkaSettings, ensure_topics
from scorestream.streaming.exactly_once import TransactionalSink


def _records(topic: str, batch: int, n: int) -> list[Any]:
    return [(topic, f"k{batch}-{i}".encode(), f"v{batch}-{i}".encode(), []) for i in range(n)]


def test_replayed_batch_is_skipped_and_open_transaction_fenced(
    kafka: KafkaSettings, topic_factory: Any
) -> None:
    output = topic_factory("eo-out")
    markers = f"{output}.markers"
    ensure_topics(kafka, [markers], partitions=1, config={"cleanup.policy": "compact"})
    tid = f"scorestream-test-{uuid.uuid4().hex[:8]}"

    first = TransactionalSink(kafka, markers, tid, timeout_s=30)
    assert not first.publish(0, _records(output, 0, 100)).skipped
    assert not first.publish(1, _records(output, 1, 100)).skipped
    first.close()

    # A restarted scorer (same transactional id) replays batch 1: skipped; batch 2 is new.
    second = TransactionalSink(kafka, markers, tid, timeout_s=30)
    replay = second.publish(1, _records(output, 1, 100))
    assert replay.skipped and replay.records == 0
    assert second.last_committed == 1

    # A zombie: a transaction left open (the process "dies" before committing) ...
    second._producer.begin_transaction()
    for topic, key, value, _ in _records(output, 2, 50):
        second._producer.produce(topic, key=key, value=value)
    second._producer.flush(30)
    # ... is aborted when the next incarnation starts, which then publishes batch 2 itself.
    third = TransactionalSink(kafka, markers, tid, timeout_s=30)
    assert not third.publish(2, _records(output, 2, 100)).skipped
    with pytest.raises(Exception, match=r"(?i)fenc"):
        second._producer.commit_transaction(10)
    third.close()

    committed = read_quiet(
        kafka, output, 300, quiet_s=2.0, timeout_s=60, isolation="read_committed"
    )
    keys = [m.key().decode() for m in committed]
    assert len(keys) == 300 == len(set(keys))
    assert {k.split("-")[0] for k in keys} == {"k0", "k1", "k2"}
    # read_uncommitted consumers do see the aborted records: the mode needs read_committed.
    everything = read_quiet(kafka, output, 350, quiet_s=2.0, timeout_s=60)
    assert len(everything) == 350


def test_unreachable_broker_for_transactions_is_an_error_naming_it() -> None:
    sink = TransactionalSink(
        KafkaSettings(bootstrap="127.0.0.1:9"), "markers", "scorestream-x", timeout_s=2
    )
    with pytest.raises(StackError, match=r"cannot start transactions on 127\.0\.0\.1:9"):
        sink.publish(0, [])
