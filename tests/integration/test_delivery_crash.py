"""kill -9 of the scorer (Python and its JVM) at two points of a 30,000-event stream, the second
in a run that itself resumed from a killed one, then a restart from the checkpoint:
at-least-once loses nothing; exactly-once also publishes nothing twice to a read_committed
consumer."""

from __future__ import annotations

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

EVENTS = 30_000
BATCH = 3_000
# Output records seen before each kill -9: once in the first run, once in a resumed one. A
# third kill added a fourth JVM start (about a minute on 2 cores) to every run of the suite.
KILL_AT = (5_000, 17_000)


def _args(kafka: KafkaSettings, registry: Registry, source: str, output: str, ckpt: Path) -> list:
    return [
        "--bootstrap",
        kafka.bootstrap,
        "--registry",
        str(registry.root),
        "--input-topic",
        source,
        "--output-topic",
        output,
        "--checkpoint",
        str(ckpt),
        "--max-offsets-per-trigger",
        str(BATCH),
        "--master",
        "local[2]",
        "--driver-memory",
        "1g",
        "--metrics-port",
        "0",
        "--drift",
        "false",
    ]


# Three scorer start-ups (a JVM each) on a 2-core machine: more than the default 600 s budget
# when the machine is busy.
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("mode", ["at-least-once", "exactly-once"])
def test_kill_9_at_several_points_then_restart(
    mode: str,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    source, output = topic_factory("crash-in"), topic_factory("crash-out")
    events = [e | {"event_time": EVENT_TIME + i} for i, e in enumerate(iter_events(EVENTS, 61))]
    assert publish(kafka, ProduceSettings(topic=source), events) == EVENTS
    wanted = {e["event_id"] for e in events}
    args = _args(kafka, trained_registry, source, output, tmp_path / "checkpoint")
    if mode == "exactly-once":
        args.append("--exactly-once")
    log = tmp_path / "scorer.log"
    watcher = consumer(kafka, output)  # read_uncommitted: sees progress as it is written
    seen = 0
    proc = None
    try:
        for kill_at in KILL_AT:
            proc = scorer_process(args, log)
            deadline = time.monotonic() + 360
            while seen < kill_at:
                assert proc.poll() is None, f"scorer exited early:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, (
                    f"only {seen} outputs:\n{log.read_text()[-3000:]}"
                )
                seen += sum(1 for m in watcher.consume(1000, timeout=0.2) if not m.error())
            kill_group(proc)
        proc = scorer_process(args, log)
        isolation = "read_committed" if mode == "exactly-once" else "read_uncommitted"
        read = read_ids(kafka, output, wanted, quiet_s=8.0, timeout_s=420, isolation=isolation)
    finally:
        watcher.close()
        if proc is not None:
            kill_group(proc)  # never leaves a scorer or its JVM behind
    ids = Counter(read)
    duplicates = sum(n - 1 for n in ids.values())
    missing = wanted - set(ids)
    print(
        f"\n{mode}: {len(KILL_AT)} kill -9, {len(read)} records read, {len(ids)} distinct, "
        f"{duplicates} duplicates, {len(missing)} missing, {time.monotonic() - started:.0f} s"
    )
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:3]}"
    if mode == "exactly-once":
        assert duplicates == 0, f"{duplicates} duplicates under read_committed"
        assert len(read) == EVENTS
