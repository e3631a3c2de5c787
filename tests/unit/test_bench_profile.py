"""The profile summaries of `make bench`: JFR's and py-spy's text read into top frames."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.profile import jfr_samples, pyspy_samples, summarise  # noqa: E402

pytestmark = pytest.mark.unit

JFR_TEXT = """jdk.ExecutionSample {
  startTime = 14:17:10.004
  sampledThread = "Executor task launch worker for task 1.0 in stage 7.0 (TID 9)" (javaThreadId = 6)
  state = "STATE_RUNNABLE"
  stackTrace = [
    org.apache.spark.sql.catalyst.json.JacksonParser.parse(JsonParser, Function1) line: 12
    org.apache.spark.sql.execution.GeneratedIterator.processNext() line: 3
    ...
  ]
}

jdk.ExecutionSample {
  startTime = 14:17:10.024
  sampledThread = "Executor task launch worker for task 0.0 in stage 8.0 (TID 1)" (javaThreadId = 7)
  state = "STATE_RUNNABLE"
  stackTrace = [
    org.apache.kafka.clients.producer.KafkaProducer.send(ProducerRecord, Callback) line: 4
    org.apache.spark.sql.execution.GeneratedIterator.processNext() line: 3
  ]
}

jdk.ExecutionSample {
  startTime = 14:17:10.044
  sampledThread = "main" (javaThreadId = 1)
  state = "STATE_RUNNABLE"
  stackTrace = [
    org.apache.spark.sql.catalyst.json.JacksonParser.parse(JsonParser, Function1) line: 12
  ]
}
"""


def test_jfr_samples_give_self_inclusive_and_thread_shares() -> None:
    samples = list(jfr_samples(JFR_TEXT))
    assert [len(frames) for _, frames in samples] == [2, 2, 1]  # "..." is not a frame
    got = summarise(samples)
    assert got["samples"] == 3
    parse = "org.apache.spark.sql.catalyst.json.JacksonParser.parse"
    assert got["self"][0] == [parse, round(2 / 3, 4)]
    assert dict(map(tuple, got["inclusive"]))[
        "org.apache.spark.sql.execution.GeneratedIterator.processNext"
    ] == round(2 / 3, 4)
    # Task threads fold into one name whatever their task and stage numbers.
    threads = dict(map(tuple, got["threads"]))
    assert threads["Executor task launch worker for task N.N in stage N.N (TID N)"] == round(
        2 / 3, 4
    )


def test_pyspy_collapsed_stacks_count_each_sample_and_drop_line_numbers() -> None:
    text = (
        "<module> (worker.py:9);_process (job.py:330);_write (job.py:450) 3\n"
        "<module> (worker.py:9);_process (job.py:331) 1\n"
        "garbage line without a count\n"
    )
    got = summarise(pyspy_samples(text))
    assert got["samples"] == 4
    assert got["self"] == [["_write (job.py)", 0.75], ["_process (job.py)", 0.25]]
    assert dict(map(tuple, got["inclusive"]))["_process (job.py)"] == 1.0
