"""Record limits without a broker: the sink's max.request.size, the event-time window, and how
a batch failure is told apart (the data's, or the broker's) and summed up for a dead letter."""

from __future__ import annotations

import pytest

from scorestream.errors import ConfigError
from scorestream.kafka import KafkaSettings, user_max_request_bytes
from scorestream.streaming.isolate import is_transient, summary
from scorestream.streaming.validate import ValidationSettings

TASK_FAILURE = (
    "An error occurred while calling o4058.save.\n: org.apache.spark.SparkException: Job "
    "aborted due to stage failure: Task 0 in stage 121.0 failed 1 times, most recent failure: "
    "Lost task 0.0 in stage 121.0 (TID 163) (localhost executor driver): "
    "java.lang.ArithmeticException: long overflow\n\tat java.base/java.lang.Math.multiplyExact"
)


def test_sink_max_request_size_comes_from_preflight_and_the_user_wins() -> None:
    plain = KafkaSettings("h:9092").spark_sink_options(max_request_bytes=8_388_608)
    assert plain["kafka.max.request.size"] == "8388608"
    assert "kafka.buffer.memory" not in plain  # 8 MiB fits the default 32 MiB buffer
    big = KafkaSettings("h:9092").spark_sink_options(max_request_bytes=64 * 1024**2)
    assert big["kafka.buffer.memory"] == str(64 * 1024**2)
    assert "kafka.max.request.size" not in KafkaSettings("h:9092").spark_sink_options()
    mine = KafkaSettings("h:9092", {"max.request.size": "2000000"})
    assert mine.spark_sink_options(max_request_bytes=8_388_608)["kafka.max.request.size"] == (
        "2000000"
    )
    assert user_max_request_bytes(mine) == 2_000_000
    assert user_max_request_bytes(KafkaSettings("h:9092")) is None


def test_a_max_request_size_that_is_not_a_number_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"max.request.size='2 MB' is not a whole number"):
        user_max_request_bytes(KafkaSettings("h:9092", {"max.request.size": "2 MB"}))


def test_event_time_window_is_documented_and_checked() -> None:
    assert ValidationSettings().window_text() == "[2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"
    with pytest.raises(ConfigError, match="must be non-empty"):
        ValidationSettings(event_time_min_ms=4_000_000_000_000, event_time_end_ms=1)
    with pytest.raises(ConfigError, match="after year 9999"):
        ValidationSettings(event_time_end_ms=10**15)


def test_a_task_failure_is_summed_up_by_its_root_exception() -> None:
    assert summary(RuntimeError(TASK_FAILURE)) == "java.lang.ArithmeticException: long overflow"
    assert summary(ValueError("bad\nmore")) == "ValueError: bad"
    assert len(summary(RuntimeError("x" * 5000))) <= 300


def test_broker_network_and_auth_failures_are_transient_data_failures_are_not() -> None:
    assert not is_transient(RuntimeError(TASK_FAILURE))
    for text in (
        "org.apache.kafka.common.errors.TimeoutException: Topic scores not present in metadata",
        "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized",
        "java.net.ConnectException: Connection refused",
        "transaction of batch 3 failed: Broker: Coordinator not available",
    ):
        assert is_transient(RuntimeError(text)), text
