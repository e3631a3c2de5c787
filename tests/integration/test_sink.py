"""`scorestream sink` on the real broker into a real PostgreSQL and SQLite: kill -9 mid-stream,
resume, and the table holds one row per event, each the newest score of its event on the topic;
a full replay from offset zero changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fixtures_sink_db import Postgres
from streamkit import headers, kill_group, read, read_quiet

from scorestream.kafka import KafkaSettings
from scorestream.producers.publisher import Publisher

EVENTS, REPEATS, RATE = 4_000, 1_000, 1_500.0  # records/s while the sink is killed and resumed
BAD = [b"not json", json.dumps({"event_id": "no-score"}).encode()]


def _iso(ms: int) -> str:
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _records(seed: int) -> list[tuple[bytes, bytes]]:
    """Score records: every event once, then later scores of some events (a newer model, or a
    replayed batch), with two unusable records among them."""
    rng = random.Random(seed)
    out = []
    for k in range(EVENTS):
        out.append(_score(f"e-{k}", rng.random(), 1, k))
    for n, k in enumerate(rng.sample(range(EVENTS), REPEATS)):
        out.append(_score(f"e-{k}", rng.random(), 2, k))
        if n in (10, 600):
            out.append((b"bad", BAD[n // 600]))
    return out


def _score(event_id: str, score: float, version: int, k: int) -> tuple[bytes, bytes]:
    record = {
        "event_id": event_id,
        "score": score,
        "prediction": float(score > 0.5),
        "model_version": version,
        "event_time": _iso(1_767_225_600_000 + k),
        "scored_at": _iso(1_767_225_601_000 + k),
    }
    return event_id.encode(), json.dumps(record).encode()


class Db:
    """Reads the sink's table in either database."""

    def __init__(self, kind: str, url: str, native: str, password: str = "") -> None:
        self.kind, self.url, self.native, self.password = kind, url, native, password

    def rows(self, table: str) -> dict[str, tuple[Any, ...]] | None:
        sql = (
            "SELECT event_id, score, prediction, model_version, event_time, kafka_partition, "
            f"kafka_offset FROM {table}"
        )
        if self.kind == "sqlite":
            if not Path(self.native).exists():
                return None
            with sqlite3.connect(self.native) as conn:
                try:
                    got = conn.execute(sql).fetchall()
                except sqlite3.OperationalError:
                    return None
        else:
            import psycopg

            with psycopg.connect(self.native) as conn:
                try:
                    got = conn.execute(sql).fetchall()
                except psycopg.errors.UndefinedTable:
                    return None
        return {r[0]: tuple(r[1:]) for r in got}


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":
        path = tmp_path / "scores.db"
        return Db("sqlite", f"jdbc:sqlite:{path}", str(path))
    pg: Postgres = request.getfixturevalue("sink_postgres")
    return Db("postgresql", pg.jdbc_url, pg.url, pg.password)


def _sink(db: Db, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    # The URL (with its password) goes by environment, as a deployment would pass it.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SCORESTREAM_SINK_URL": db.url}
    return subprocess.Popen(
        [sys.executable, "-m", "scorestream", "--log-level", "info", "sink", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _wait(check: Any, timeout_s: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"sink exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)  # polling with a deadline


def _caught_up(kafka: KafkaSettings, topic: str, group: str) -> bool:
    """The group's committed offsets are the end of every partition."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(kafka.confluent(**{"group.id": group, "enable.auto.commit": False}))
    try:
        parts = [TopicPartition(topic, p) for p in range(2)]
        committed = c.committed(parts, timeout=10)
        ends = [c.get_watermark_offsets(p, timeout=10)[1] for p in parts]
    finally:
        c.close()
    return [p.offset for p in committed] == ends


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def test_sink_survives_kill_9_and_replays_to_one_row_per_event(
    kafka: KafkaSettings, topic_factory: Any, tmp_path: Path, db: Db
) -> None:
    topic = topic_factory("scores")
    table = f"scores_{uuid.uuid4().hex[:8]}"
    group = f"sink-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "sink.log"
    args = ["--bootstrap", kafka.bootstrap, "--topic", topic, "--table", table]
    args += ["--batch-size", "200"]
    records = _records(seed=16)

    first = _sink(db, [*args, "--group", group], log)
    try:
        _wait(lambda: db.rows(table) is not None, 60, "table created", first, log)

        def produce() -> None:
            started = time.monotonic()
            with Publisher(kafka) as pub:
                for n, (key, value) in enumerate(records):
                    pub.send(topic, value, key=key)
                    ahead = n / RATE - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)  # pacing, not synchronisation

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        _wait(lambda: len(db.rows(table) or {}) >= 500, 60, "500 rows", first, log)
    finally:
        kill_group(first)  # kill -9 mid-stream
    at_kill = len(db.rows(table) or {})
    assert 500 <= at_kill < EVENTS, at_kill  # killed in the middle, not after the end

    second = _sink(db, [*args, "--group", group], log)
    try:
        producer.join(timeout=60)
        assert not producer.is_alive()
        _wait(lambda: _caught_up(kafka, topic, group), 120, "group caught up", second, log)
    finally:
        assert _stop(second) == 0, log.read_text()[-3000:]

    # The truth is the topic: the newest (partition, offset) record of each event.
    messages = read(kafka, topic, len(records), timeout_s=60)
    assert len(messages) == len(records)
    newest: dict[str, tuple[Any, ...]] = {}
    for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        if m.key() == b"bad":
            continue
        r = json.loads(m.value())
        newest[r["event_id"]] = (r["score"], r["prediction"], r["model_version"], r["event_time"])
        newest[r["event_id"]] += (m.partition(), m.offset())

    def check_table() -> None:
        rows = db.rows(table)
        assert rows is not None
        assert len(rows) == len(newest) == EVENTS
        for event_id, want in newest.items():
            got = rows[event_id]
            assert got[0] == pytest.approx(want[0], abs=1e-12), (event_id, got, want)
            assert got[1:3] == want[1:3], (event_id, got, want)
            assert _epoch(got[3]) == _epoch(want[3]), (event_id, got, want)
            assert got[4:] == want[4:], (event_id, got, want)

    check_table()
    # At least once each (a kill between the dead letter and the offset commit repeats one).
    dead = read_quiet(kafka, f"{topic}.sink.dlq", len(BAD), quiet_s=2, timeout_s=30)
    assert {m.value() for m in dead} == set(BAD)
    assert {headers(m)["scorestream.error.reason"] for m in dead} == {
        "DECODE_ERROR",
        "MISSING_FIELD",
    }

    # A full replay (a new group from offset zero) rewrites the same rows: nothing changes.
    replay_group = f"{group}-replay"
    third = _sink(db, [*args, "--group", replay_group], log)
    try:
        _wait(lambda: _caught_up(kafka, topic, replay_group), 120, "replay caught up", third, log)
    finally:
        assert _stop(third) == 0
    check_table()
    text = log.read_text()
    assert "stopped:" in text
    assert db.url not in text
    assert not db.password or db.password not in text
