"""The benchmark harness, tiny: it runs end to end and every contender scores every event.

Speed is never asserted here; the structure of the results and the counts are.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from streamkit import read

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.export import export
from scorestream.models.registry import Registry
from scorestream.models.scorer import CoefficientScorer
from scorestream.stack import LocalKafka, StackSettings

EVENTS = 300
# benchmarks/ is a folder of the repository, not an installed package.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _card(spark: Any, registry: Registry, path: Path) -> Path:
    entry, model = registry.load("champion")
    return export(spark, entry, model, "coefficients", path)


def test_peer_a_vector_scorer_matches_the_reference_scorer(
    spark: Any, trained_registry: Registry, tmp_path: Path
) -> None:
    from benchmarks.peer_a import VectorScorer

    card = json.loads(_card(spark, trained_registry, tmp_path / "card.json").read_text())
    records: list[dict[str, Any]] = list(iter_events(500, seed=5))
    records[0]["amount"] = None  # imputed
    records[1]["merchant_category"] = "never-seen"  # the keep slot
    records[2].pop("country")  # missing category
    records[3]["hour_of_day"] = float("nan")
    vector = VectorScorer(card)
    got = vector.score(vector.columns(records), len(records))
    reference = CoefficientScorer(card)
    want = np.array([reference.score(r) for r in records])
    assert np.max(np.abs(got - want)) <= 1e-12


def _scores(kafka: KafkaSettings, topic: str, n: int) -> dict[str, float]:
    return {
        json.loads(m.value())["event_id"]: json.loads(m.value())["score"]
        for m in read(kafka, topic, n, timeout_s=60)
    }


def test_bench_smoke(
    spark: Any, kafka: KafkaSettings, trained_registry: Registry, tmp_path: Path
) -> None:
    from benchmarks.cli import main

    card = _card(spark, trained_registry, tmp_path / "card.json")
    results, summary = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    contenders = ["peer-b", "peer-a", "scorer-json", "spark-json"]
    code = main(
        [
            "--events", str(EVENTS),
            "--repeats", "1",
            "--contenders", ",".join(contenders),
            "--latency-contenders", "peer-b,peer-a",
            "--rates", "100",
            "--latency-seconds", "1",
            "--bootstrap", kafka.bootstrap,
            "--registry", str(trained_registry.root),
            "--card", str(card),
            "--results-dir", str(results),
            "--summary", str(summary),
            "--work-dir", str(tmp_path / "work"),
            "--profile", "scorer-json",
            "--profile-events", str(EVENTS // 2),
        ]
    )  # fmt: skip
    assert code == 0
    (js,) = results.glob("*.json")
    assert js.with_suffix(".md").exists() and js.with_suffix(".png").stat().st_size > 0
    result = json.loads(js.read_text())
    assert {"command", "machine", "settings", "summary", "targets", "runs"} <= result.keys()
    assert result["machine"]["cores"] >= 1 and len(result["machine"]["load_avg"]) == 3

    runs = result["runs"]
    assert not [r for r in runs if "error" in r]
    throughput = {r["contender"]: r for r in runs if r["kind"] == "throughput"}
    assert set(throughput) == set(contenders)
    for name, run in throughput.items():
        # Every contender scored every event, once each at least, none dead-lettered.
        assert run["events"] == EVENTS and run["distinct"] == EVENTS, name
        assert run["records"] >= EVENTS and run["dead_lettered"] == 0, name
        assert run["throughput_basis"] in ("sustained", "incl_start"), name
        assert run["throughput"] > 0 and run["peak_rss_bytes"] > 0, name
    latency = {r["contender"]: r for r in runs if r["kind"] == "latency"}
    assert set(latency) == {"peer-b", "peer-a"}
    for name, run in latency.items():
        phase = run["rates"]["100"]
        assert phase["received"] == phase["sent"] == 100, name
        assert phase["p50_ms"] <= phase["p99_ms"] <= phase["max_ms"], name

    s = result["summary"]
    assert s["peer-b"]["ratio_vs_peer_b"]["median"] == 1.0
    assert s["peer-a"]["ratio_vs_peer_a"]["median"] == 1.0
    assert math.isfinite(s["scorer-json"]["ratio_vs_peer_a"]["median"])
    assert all(e["all_scored"] for e in s.values())
    assert {t["status"] for t in result["targets"]} <= {"met", "missed", "not measured"}
    assert len(result["targets"]) == 9
    assert math.isfinite(s["scorer-json"]["ratio_vs_spark_json"]["median"])

    # Peer A and the scorer gave the same events the same scores (same model, two engines).
    run_id = result["settings"]["run_id"]
    spark_scores = _scores(kafka, f"bench-{run_id}-scorer-json-tp1-out", EVENTS)
    peer_scores = _scores(kafka, f"bench-{run_id}-peer-a-tp1-out", EVENTS)
    assert spark_scores.keys() == peer_scores.keys() and len(spark_scores) == EVENTS
    assert max(abs(spark_scores[k] - peer_scores[k]) for k in spark_scores) <= 1e-9
    # Spark's floor moved every event through parse and encode, its id and time intact.
    floor = {
        json.loads(m.value())["event_id"]: json.loads(m.value())
        for m in read(kafka, f"bench-{run_id}-spark-json-tp1-out", EVENTS, timeout_s=60)
    }
    assert floor.keys() == spark_scores.keys()
    assert all(str(v["event_time"]).startswith("20") for v in floor.values())

    # The scorer was profiled over its second batch: JFR on its JVM, py-spy on its driver.
    (profile,) = result["profiles"]
    assert profile["contender"] == "scorer-json" and not profile["errors"], profile
    assert profile["window_events"] == EVENTS // 2
    jvm, python = profile["jvm"], profile["python"]
    assert jvm["samples"] > 0
    assert any(frame.startswith("org.apache.") for frame, _ in jvm["inclusive"])
    # py-spy wrote its recording (no error above); it keeps only running threads, so a driver
    # that waited in Py4J through the whole (tiny) window has no sample to show.
    rows = python["self"]
    assert bool(rows) == (python["samples"] > 0)
    if rows:  # each share is rounded to 4 places: the sum may pass 1 by half a unit per row
        assert 0 < sum(share for _, share in rows) <= 1.0 + 0.00005 * len(rows)

    text = summary.read_text()
    assert "## Profiles (one steady-state batch each)" in text
    assert "python -m benchmarks --events 300" in text and "| peer-a" in text
    assert "## Targets" in text


def _running_under(work: Path) -> list[str]:
    """Command lines of the processes that name `work` (the bench's own scratch directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:  # ended meanwhile
                continue
            if str(work) in cmdline:
                found.append(cmdline[:200])
    return found


def test_sigterm_stops_the_bench_with_its_broker_and_contender(tmp_path: Path) -> None:
    work, log = tmp_path / "work", tmp_path / "bench.log"
    cmd = [sys.executable, "-m", "benchmarks", "--events", "200", "--repeats", "1"]
    cmd += ["--contenders", "peer-b", "--latency-contenders", "peer-b", "--profile", ""]
    cmd += ["--work-dir", str(work), "--results-dir", str(tmp_path / "r"), "--summary", ""]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        # SIGTERM while the model is trained: the broker is up and a worker process runs.
        deadline = time.monotonic() + 180
        while "training one model" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)  # polling the bench's log with a deadline
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    text = log.read_text()
    assert code == 130, text[-2000:]
    assert "interrupted (signal 15)" in text, text[-2000:]
    assert not LocalKafka(StackSettings(state_dir=work / "stack")).running(), "broker left"
    # The training worker and its JVM end with it (the JVM when its driver's pipe closes).
    deadline = time.monotonic() + 60
    while _running_under(work):
        assert time.monotonic() < deadline, _running_under(work)
        time.sleep(0.2)  # polling /proc with a deadline
