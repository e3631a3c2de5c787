"""`scorestream score --trigger realtime` under SIGTERM: the metrics query and the real-time
query stop, the command says so and exits 0, and every event published before was scored."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from streamkit import EVENT_TIME, kill_group, read_ids, scorer_process

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.publisher import ProduceSettings, publish

EVENTS = 300


@pytest.mark.timeout(900)
def test_realtime_score_stops_on_sigterm_with_exit_0(
    kafka: KafkaSettings, trained_registry: Registry, topic_factory: Any, tmp_path: Path
) -> None:
    source, output = topic_factory("rt-cli-in", partitions=2), topic_factory("rt-cli-out")
    events = [e | {"event_time": EVENT_TIME + i} for i, e in enumerate(iter_events(EVENTS, 73))]
    assert publish(kafka, ProduceSettings(topic=source), events) == EVENTS
    args = [
        *("--bootstrap", kafka.bootstrap, "--registry", str(trained_registry.root)),
        *("--input-topic", source, "--output-topic", output, "--trigger", "realtime"),
        *("--checkpoint", str(tmp_path / "checkpoint"), "--master", "local[3]"),
        *("--realtime-monitor-interval", "5 seconds"),  # the metrics query: 2 + 1 slots
        *("--driver-memory", "1g", "--metrics-port", "0", "--drift", "false"),
    ]
    log = tmp_path / "scorer.log"
    proc = scorer_process(args, log)
    try:
        wanted = {str(e["event_id"]) for e in events}
        read = read_ids(kafka, output, wanted, quiet_s=2.0, timeout_s=360)
        assert set(read) == wanted, log.read_text()[-3000:]
        assert proc.poll() is None, log.read_text()[-3000:]
        os.kill(proc.pid, signal.SIGTERM)  # the Python process only, as a supervisor would
        code = proc.wait(timeout=120)
    finally:
        kill_group(proc)  # no-op when it stopped by itself; never leaves a JVM behind
    text = log.read_text()
    assert code == 0, f"exit {code} after SIGTERM:\n{text[-3000:]}"
    assert f"real-time scoring {source} -> {output} " in text
    assert "; metrics on http://" in text
    assert "SIGTERM: stopping\n" in text
    # The runner's last line (JVM shutdown lines may follow it in the log).
    assert "\nstopped\n" in text, text[-3000:]
