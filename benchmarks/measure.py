"""What the harness measures: process-tree memory, output counts, and latency at a subscriber.

`python -m benchmarks.measure subscribe ...` is the latency subscriber, run as its own process
so its parsing never competes with the harness's paced producer for the GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorestream.kafka import KafkaSettings
from scorestream.producers.encoding import parse_time

PAGE = os.sysconf("SC_PAGE_SIZE")


# -- memory ------------------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants (the JVM of a PySpark driver included)."""
    tree = _children()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += resident * PAGE
        stack.extend(tree.get(pid, ()))
    return total


class PeakRss:
    """Samples the RSS of a process tree every `every_s` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid = pid
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, tree_rss(self.pid))


# -- output counts -----------------------------------------------------------------------------
def high_watermarks(kafka: KafkaSettings, topic: str, consumer: Any = None) -> int:
    """Sum of the end offsets of a topic's partitions (cheap: no records are read)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    own = consumer is None
    c = consumer or Consumer(kafka.confluent(**{"group.id": f"bench-wm-{uuid.uuid4().hex[:8]}"}))
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                meta = c.list_topics(topic, timeout=10)
                parts = meta.topics[topic].partitions if topic in meta.topics else {}
                return sum(
                    c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                    for p in parts
                )
            except KafkaException as exc:
                # A topic the contender just created may have no leader yet on a busy machine
                # (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE): retriable, so ask again.
                if not _leader_pending(exc.args[0]) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # retry backoff, bounded by the deadline
    finally:
        if own:
            c.close()


def _leader_pending(err: Any) -> bool:
    """A Kafka error that a new topic's partitions give until their leader is elected (the
    watermark call does not always flag it retriable)."""
    from confluent_kafka import KafkaError

    pending = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
    return bool(err.retriable()) or err.code() in pending


@dataclass
class OutputCheck:
    """What an output topic holds: records, distinct keys, last record timestamp (ms)."""

    records: int = 0
    distinct: int = 0
    last_ms: int = 0
    first_ms: int = 0
    keys: set[bytes] = field(default_factory=set, repr=False)
    stamps: list[int] = field(default_factory=list, repr=False)

    def sustained(self) -> float:
        """Records per second between the 10th and the 100th percentile of output timestamps:
        the rate at saturation, without the start-up before the first records came out."""
        if len(self.stamps) < 10:
            return float("nan")
        ordered = sorted(self.stamps)
        start = ordered[len(ordered) // 10]
        span = (ordered[-1] - start) / 1000
        return (len(ordered) - len(ordered) // 10) / span if span >= 0.05 else float("nan")


def read_output(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float, committed: bool = False
) -> OutputCheck:
    """Read a topic from the start until `expected` distinct keys are seen or time runs out."""
    from confluent_kafka import Consumer

    conf = kafka.confluent(
        **{
            "group.id": f"bench-check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "fetch.max.bytes": 52_428_800,
        }
    )
    c = Consumer(conf)
    c.subscribe([topic])
    out = OutputCheck()
    deadline = time.monotonic() + timeout_s
    try:
        while len(out.keys) < expected and time.monotonic() < deadline:
            for msg in c.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    continue
                out.records += 1
                out.keys.add(msg.key() or b"")
                ts = msg.timestamp()[1]
                out.stamps.append(ts)
                out.last_ms = max(out.last_ms, ts)
                out.first_ms = ts if not out.first_ms else min(out.first_ms, ts)
    finally:
        c.close()
    out.distinct = len(out.keys)
    return out


# -- latency subscriber ------------------------------------------------------------------------
_MARK = b'"event_time":"'


def event_time_s(value: bytes) -> float | None:
    """The event time of a JSON score (or pass-through event) record, in epoch seconds."""
    start = value.find(_MARK)
    if start < 0:
        return None
    start += len(_MARK)
    end = value.find(b'"', start)
    return parse_time(value[start:end].decode())


def phase_of(key: bytes) -> str:
    """Events are named evt-<seed>-<k>: the seed tells the phase (warm-up or a rate)."""
    parts = key.decode(errors="replace").split("-")
    return parts[1] if len(parts) >= 3 else "?"


def subscribe(
    kafka: KafkaSettings,
    topic: str,
    out: Path,
    status: Path,
    committed: bool,
    stop: threading.Event,
) -> None:
    """Consume `topic` until stopped; write {phase: [latency ms]} and duplicate counts to `out`."""
    from confluent_kafka import Consumer

    c = Consumer(
        kafka.confluent(
            **{
                "group.id": f"bench-lat-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed" if committed else "read_uncommitted",
                "fetch.wait.max.ms": 5,
                "fetch.min.bytes": 1,
            }
        )
    )
    c.subscribe([topic])
    latencies: dict[str, list[float]] = {}
    seen: set[bytes] = set()
    duplicates = 0
    last_status = 0.0
    try:
        while not stop.is_set():
            # Arrival is stamped as soon as the first record is handed over (no batch wait).
            first = c.consume(num_messages=1, timeout=0.05)
            arrived = time.time()
            more = c.consume(num_messages=1000, timeout=0) if first else []
            for msg in first + more:
                if msg.error():
                    continue
                key = msg.key() or b""
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                stamp = event_time_s(msg.value() or b"")
                if stamp is not None:
                    latencies.setdefault(phase_of(key), []).append((arrived - stamp) * 1000)
            now = time.monotonic()
            if now - last_status > 0.3:
                _write(status, {p: len(v) for p, v in latencies.items()})
                last_status = now
    finally:
        c.close()
        _write(status, {p: len(v) for p, v in latencies.items()})
        _write(out, {"latencies_ms": latencies, "duplicates": duplicates})


def _write(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.measure")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("subscribe", help="latency subscriber (stops on SIGTERM)")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--status", required=True, type=Path)
    s.add_argument("--committed", action="store_true", help="read_committed (exactly-once)")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    subscribe(
        KafkaSettings(bootstrap=args.bootstrap),
        args.topic,
        args.out,
        args.status,
        args.committed,
        stop,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
