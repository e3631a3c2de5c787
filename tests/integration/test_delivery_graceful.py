"""SIGTERM and SIGINT stop `scorestream score` cleanly (exit 0, the running batch finished) and
the next start resumes from the checkpoint without losing an event."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from streamkit import EVENT_TIME, kill_group, read_ids, scorer_process

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.producers.subscriber import consumer

EVENTS = 12_000
BATCH = 2_000
STOPS = ((signal.SIGTERM, 3_000), (signal.SIGINT, 7_000))


@pytest.mark.timeout(1200)
def test_sigterm_then_sigint_exit_0_and_resume_without_loss(
    kafka: KafkaSettings, trained_registry: Registry, topic_factory: Any, tmp_path: Path
) -> None:
    source, output = topic_factory("graceful-in"), topic_factory("graceful-out")
    events = [e | {"event_time": EVENT_TIME + i} for i, e in enumerate(iter_events(EVENTS, 71))]
    assert publish(kafka, ProduceSettings(topic=source), events) == EVENTS
    wanted = {e["event_id"] for e in events}
    args = [
        *("--bootstrap", kafka.bootstrap, "--registry", str(trained_registry.root)),
        *("--input-topic", source, "--output-topic", output),
        *("--checkpoint", str(tmp_path / "checkpoint")),
        *("--max-offsets-per-trigger", str(BATCH), "--master", "local[2]"),
        *("--driver-memory", "1g", "--metrics-port", "0", "--drift", "false"),
    ]
    log = tmp_path / "scorer.log"
    watcher = consumer(kafka, output)
    seen = 0
    try:
        for signum, stop_at in STOPS:
            proc = scorer_process(args, log)
            try:
                deadline = time.monotonic() + 360
                while seen < stop_at:
                    assert proc.poll() is None, log.read_text()[-3000:]
                    assert time.monotonic() < deadline, f"{seen} outputs\n{log.read_text()[-3000:]}"
                    seen += sum(1 for m in watcher.consume(1000, timeout=0.2) if not m.error())
                os.kill(proc.pid, signum)  # the Python process only, as a supervisor would
                code = proc.wait(timeout=120)
            finally:
                kill_group(proc)  # no-op when it stopped by itself; never leaves a JVM behind
            text = log.read_text()
            assert code == 0, f"exit {code} after {signum.name}:\n{text[-3000:]}"
            assert f"{signum.name}: stopping after the current batch" in text
            assert "stopped:" in text.splitlines()[-1] or "stopped:" in text
        proc = scorer_process(args, log)
        try:
            read = read_ids(kafka, output, wanted, quiet_s=6.0, timeout_s=300)
        finally:
            kill_group(proc)
    finally:
        watcher.close()
    ids = Counter(read)
    duplicates = sum(n - 1 for n in ids.values())
    print(f"\ngraceful stops: {len(read)} records, {len(ids)} distinct, {duplicates} dupes")
    assert set(ids) == wanted
    # Each graceful stop may land after a batch's writes and before Spark's commit of it, so at
    # most one batch per stop is written again (docs/streaming.md); nothing is ever lost.
    assert duplicates <= BATCH * len(STOPS)
