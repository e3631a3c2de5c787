"""The bench's output counts: a topic whose leader is not elected yet is asked again."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import high_watermarks  # noqa: E402
from scorestream.kafka import KafkaSettings  # noqa: E402

pytestmark = pytest.mark.unit


class FakeConsumer:
    """Two partitions with end offsets 5 and 7; the first `failures` watermark calls fail."""

    def __init__(self, failures: list[KafkaError]) -> None:
        self.failures = failures
        self.calls = 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions={0: None, 1: None})})

    def get_watermark_offsets(self, tp: Any, timeout: float, cached: bool) -> tuple[int, int]:
        self.calls += 1
        if self.failures:
            raise KafkaException(self.failures.pop(0))
        return 0, 5 if tp.partition == 0 else 7


def test_a_partition_without_a_leader_yet_is_asked_again() -> None:
    fake = FakeConsumer([KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)] * 2)
    assert high_watermarks(KafkaSettings(bootstrap="127.0.0.1:1"), "t", fake) == 12
    assert fake.calls == 4  # two failed tries, then both partitions


def test_other_errors_are_raised_at_once() -> None:
    fake = FakeConsumer([KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)])
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        high_watermarks(KafkaSettings(bootstrap="127.0.0.1:1"), "t", fake)
    assert fake.calls == 1
