"""`scorestream produce --from FILE` on the real broker: CSV, JSON lines and Parquet rows read
back equal to the file, typed; bad rows reported by line and column, with nothing sent (or the
rest sent with --on-bad-row skip); rows typed by a model version's feature spec."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from streamkit import EVENT_TIME, read

from scorestream.avro import EVENT_SCHEMA, avro_decoder, read_schema, unframe
from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.encoding import decode_json, parse_time

FIELDS = [f["name"] for f in read_schema(EVENT_SCHEMA)["fields"]]


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for i, event in enumerate(iter_events(n, seed=seed)):
        row = {name: event.get(name) for name in FIELDS}
        row["event_time"] = EVENT_TIME + 1000 * i
        rows.append(row)
    rows[1]["amount"] = None  # a null in a nullable field travels as null
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]], extra: str = "") -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FIELDS, *([extra] if extra else [])])
        for row in rows:
            values = ["" if row[n] is None else row[n] for n in FIELDS]
            writer.writerow([*values, *([0] if extra else [])])


def _cli(kafka: KafkaSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scorestream", "produce", "-b", kafka.bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name in FIELDS:
        a, b = got.get(name), want[name]
        if isinstance(b, float):
            assert isinstance(a, float) and (a == b or (math.isnan(a) and math.isnan(b))), name
        else:
            assert a == b, (name, a, b)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_rows_read_back_equal_the_file(
    kafka: KafkaSettings, topic_factory: Any, tmp_path: Path, kind: str
) -> None:
    rows = _rows(250, seed=51)
    path = tmp_path / f"events.{kind}"
    if kind == "csv":
        _write_csv(path, rows, extra="is_fraud")  # a column the schema lacks is left out
        fmt = "json"
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        fmt = "avro"
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(
            [
                {**r, "event_time": dt.datetime.fromtimestamp(r["event_time"] / 1000, dt.UTC)}
                for r in rows
            ]
        )
        pq.write_table(table, path)
        fmt = "confluent-avro"
    topic = topic_factory(f"from-{kind}", partitions=1)
    done = _cli(kafka, "--from", str(path), "--topic", topic, "--format", fmt, "--rate", "2000")
    assert done.returncode == 0, done.stderr
    assert f"published {len(rows)} events from {path}" in done.stderr
    assert "\r" not in done.stderr  # not a terminal: plain progress lines
    messages = read(kafka, topic, len(rows), timeout_s=60)
    assert len(messages) == len(rows)
    if fmt == "json":
        got = [decode_json(m.value()) for m in messages]
        for g in got:
            g["event_time"] = round(parse_time(g["event_time"]) * 1000)
            assert "is_fraud" not in g
    elif fmt == "avro":
        got = [avro_decoder(writer=EVENT_SCHEMA)(m.value()) for m in messages]
    else:
        assert {unframe(m.value())[0] for m in messages} == {1}
        got = [avro_decoder(True, writer=EVENT_SCHEMA)(m.value()) for m in messages]
    by_id = {g["event_id"]: g for g in got}
    assert [m.key().decode() for m in messages] == [r["event_id"] for r in rows]
    for row in rows:
        _same(by_id[row["event_id"]], row)


def test_bad_rows_are_reported_by_line_and_column_and_nothing_is_sent(
    kafka: KafkaSettings, topic_factory: Any, tmp_path: Path
) -> None:
    rows = _rows(20, seed=52)
    path = tmp_path / "events.csv"
    _write_csv(path, rows)
    lines = path.read_text().splitlines()
    # line 1 is the header: row i is on line i + 2
    lines[3] = lines[3].replace(str(rows[2]["amount"]), "twelve", 1)
    lines[7] = "," + lines[7].split(",", 1)[1]  # no event_id
    path.write_text("\n".join(lines) + "\n")
    topic = topic_factory("from-bad", partitions=1)
    failed = _cli(kafka, "--from", str(path), "--topic", topic)
    assert failed.returncode == 2, failed.stderr  # a ScorestreamError: exit 2
    assert f"2 bad rows in {path} (18 good)" in failed.stderr
    assert f"{path}:4, column 'amount': 'twelve' is not a number" in failed.stderr
    assert f"{path}:8, column 'event_id': is missing" in failed.stderr
    assert "nothing was published" in failed.stderr
    assert read(kafka, topic, 1, timeout_s=5) == []

    skipped = _cli(kafka, "--from", str(path), "--topic", topic, "--on-bad-row", "skip")
    assert skipped.returncode == 0, skipped.stderr
    assert f"{path}:4, column 'amount'" in skipped.stderr
    assert f"published 18 events from {path} to {topic}, 2 bad rows skipped" in skipped.stderr
    sent = read(kafka, topic, 18, timeout_s=30)
    good = [r["event_id"] for i, r in enumerate(rows) if i not in (2, 6)]
    assert [m.key().decode() for m in sent] == good


def test_json_lines_typed_by_a_model_versions_feature_spec(
    kafka: KafkaSettings, topic_factory: Any, tmp_path: Path, trained_registry: Registry
) -> None:
    spec = trained_registry.get(trained_registry.resolve("champion")).spec
    rows = _rows(30, seed=53)
    path = tmp_path / "events.ndjson"
    lines = [json.dumps({k: r[k] for k in (spec.event_id, *spec.feature_names)}) for r in rows]
    bad = json.loads(lines[4])
    bad[spec.numeric_names[0]] = "7.5"  # text where the spec wants a number
    lines[4] = json.dumps(bad)
    path.write_text("\n".join(lines) + "\n")
    topic = topic_factory("from-spec", partitions=1)
    args = ["--from", str(path), "--topic", topic, "--registry", str(trained_registry.root)]
    failed = _cli(kafka, *args, "--spec-from-model", "champion")
    assert failed.returncode == 2
    assert f"{path}:5, column '{spec.numeric_names[0]}': '7.5' is not a number" in failed.stderr
    done = _cli(kafka, *args, "--spec-from-model", "champion", "--on-bad-row", "skip")
    assert done.returncode == 0, done.stderr
    messages = read(kafka, topic, 29, timeout_s=30)
    got = [decode_json(m.value()) for m in messages]
    assert len(got) == 29
    assert [g[spec.event_id] for g in got] == [r["event_id"] for i, r in enumerate(rows) if i != 4]
    assert all(set(g) == {spec.event_id, spec.event_time, *spec.feature_names} for g in got)
