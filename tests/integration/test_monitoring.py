"""The monitored scorer against a real broker, real Spark and a real Prometheus scraping it.

One scenario (module fixture) drives everything: 5,000 clean events plus 10 bad records; then a
broken model version is promoted (its load fails, v1 keeps serving) while 200 more events flow;
then a good version is promoted and 5,000 events with `amount` multiplied by 3 follow (the
producer's Drift after event 5,000). With a 5,000-event window the window then holds exactly the
drifted events, so its drift equals an independent numpy/scipy computation on them.

Prometheus (Debian's package) runs on a free 127.0.0.1 port with a 1 s scrape and evaluation
interval and a copy of rules.yml whose `for:` durations are cut to 1 s: the expressions are the
real ones, only the waiting is shortened (the rule unit tests check the 5-minute `for:`).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from scipy.spatial.distance import jensenshannon
from streamkit import clone_version, free_port

from scorestream.contract.synthetic import SPEC, Drift, iter_events
from scorestream.kafka import KafkaSettings, ensure_topics
from scorestream.models.registry import Registry
from scorestream.monitoring.dashboard import DASHBOARD, RULES, dashboard_exprs, rule_exprs
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.monitoring.settings import MonitorSettings
from scorestream.producers.publisher import ProduceSettings, Publisher, publish
from scorestream.producers.subscriber import consumer
from scorestream.streaming.job import Scorer
from scorestream.streaming.monitor import ScorerMonitor
from scorestream.streaming.settings import ScorerSettings

WINDOW = 5_000
DRIFT_AFTER = 5_000
EXTRA = 200
BAD = {"DECODE_ERROR": 6, "WRONG_TYPE": 4}
EPSILON = 1e-4  # the documented PSI epsilon (docs/monitoring.md), restated independently
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _wait(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 0.2) -> Any:
    """Poll check() until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)  # polling with a deadline


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, never a proxy


def _get(url: str, timeout_s: float = 10.0) -> bytes:
    with _LOCAL.open(url, timeout=timeout_s) as response:
        return bytes(response.read())


def _scrape(url: str) -> tuple[str, Samples]:
    text = _get(url).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return text, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, expr: str) -> list[dict[str, Any]]:
        raw = _get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        body = json.loads(raw)
        assert body["status"] == "success", (expr, body)
        result = body["data"]["result"]
        return result if body["data"]["resultType"] in ("vector", "matrix") else [result]


def _fast_rules(target: Path) -> Path:
    """rules.yml with every `for:` cut to 1 s (expressions untouched)."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


@pytest.fixture(scope="module")
def prometheus_for(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], Any]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(exporter_port: int) -> Prometheus:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not on PATH (Debian package 'prometheus', `make system`)"
        root = tmp_path_factory.mktemp("prometheus")
        _fast_rules(root / "rules.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [
                {
                    "job_name": "scorestream",
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                }
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = (root / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert process.poll() is None, (root / "prometheus.log").read_text()[-2000:]
            try:
                return b"ready" in _get(f"{url}/-/ready", timeout_s=2).lower()
            except OSError:
                return False

        _wait("Prometheus /-/ready", ready, timeout_s=60)
        return Prometheus(url, process)

    try:
        yield start
    finally:
        for process in started:  # by pid, the process this fixture started
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


class RecordingMetrics(ScorerMetrics):
    """The real metrics, also keeping every (input rate, lag) the progress listener set.

    A gauge only holds the latest value and Prometheus samples it once a second; the record
    lets the test check what the listener computed from each of Spark's progress reports.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.progress: list[tuple[float, float | None]] = []

    def set_progress(
        self, input_rows_per_second: float, offsets_behind_latest: float | None
    ) -> None:
        self.progress.append((input_rows_per_second, offsets_behind_latest))
        super().set_progress(input_rows_per_second, offsets_behind_latest)


@dataclass
class Scenario:
    samples: Samples
    exposition: str
    exporter: str
    prometheus: Prometheus
    registry: Registry
    drifted: list[dict[str, Any]]
    scores: dict[str, float]
    phase1: Samples
    after_failure: Samples
    monitor: ScorerMonitor
    scorer: Scorer
    metrics: RecordingMetrics


def _counter(metrics: ScorerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def _read_scores(kafka: KafkaSettings, topic: str, count: int) -> dict[str, float]:
    scores: dict[str, float] = {}
    c = consumer(kafka, topic)
    deadline = time.monotonic() + 120
    try:
        while len(scores) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=2000, timeout=0.5):
                if not m.error():
                    record = json.loads(m.value())
                    scores[record["event_id"]] = float(record["score"])
    finally:
        c.close()
    return scores


@pytest.fixture(scope="module")
def scenario(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    prometheus_for: Callable[[int], Prometheus],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("monitored")
    # A private registry: this test promotes broken and new versions.
    registry = Registry(shutil.copytree(trained_registry.root, root / "registry"))
    served = registry.resolve("champion")
    suffix = uuid.uuid4().hex[:8]
    source, output = f"mon-features-{suffix}", f"mon-scores-{suffix}"
    ensure_topics(kafka, [source, output, f"{source}.dlq"], partitions=2)
    metrics = RecordingMetrics(CollectorRegistry())
    monitor = ScorerMonitor(
        spark, MonitorSettings(metrics_port=0, window_events=WINDOW), metrics=metrics
    )
    scorer = Scorer(
        spark,
        kafka,
        ScorerSettings(
            input_topic=source,
            output_topic=output,
            registry=registry.root,
            checkpoint=root / "checkpoint",
            max_offsets_per_trigger=2_500,
            create_topics=False,
        ),
        listeners=[monitor],
    )
    monitor.attach(scorer)
    prometheus = prometheus_for(int(monitor.port or 0))
    events = list(iter_events(2 * DRIFT_AFTER, seed=77, drift=Drift(DRIFT_AFTER, "amount", 3.0)))
    # Phase 1, published before the scorer starts: clean events and a few bad records, model
    # v1. The first trigger reads at most 2,500 of them, so its progress report shows the rest
    # as lag, whatever the timing.
    publish(kafka, ProduceSettings(topic=source), events=events[:DRIFT_AFTER])
    with Publisher(kafka) as pub:
        for i in range(BAD["DECODE_ERROR"]):
            pub.send(source, b"this is not json", key=f"bad-{i}".encode())
        for i in range(BAD["WRONG_TYPE"]):
            body = {**events[i], "event_id": f"wrong-{i}", "amount": "abc"}
            body["event_time"] = int(time.time() * 1000)
            pub.send(source, json.dumps(body).encode(), key=f"wrong-{i}".encode())
    n_bad = sum(BAD.values())
    scorer.start()
    try:
        scorer.wait_ready()

        def seen(n: int) -> Callable[[], bool]:
            def check() -> bool:
                scorer.raise_if_failed()
                return _counter(metrics, "scorestream_records_in_total") >= n

            return check

        _wait("phase 1 scored", seen(DRIFT_AFTER + n_bad), timeout_s=240)
        scorer.settle()  # the monitor's drift and latency counts of the last batch
        _, phase1 = _scrape(monitor.url)

        # Phase 2: a version that cannot load is promoted; v1 keeps serving.
        broken = clone_version(registry, served, spark_version="3.0.0")
        registry.promote(broken, reason="test: must fail to load")
        publish(kafka, ProduceSettings(topic=source, seed=5), events=iter_events(EXTRA, seed=5))
        _wait("phase 2 scored", seen(DRIFT_AFTER + n_bad + EXTRA), timeout_s=120)
        scorer.settle()  # the monitor's drift and latency counts of the last batch
        _, after_failure = _scrape(monitor.url)

        # Phase 3: a good new version, then the drifted events.
        good = clone_version(registry, served)
        registry.promote(good, reason="test: hot swap")
        publish(kafka, ProduceSettings(topic=source), events=events[DRIFT_AFTER:])
        total = 2 * DRIFT_AFTER + n_bad + EXTRA
        _wait("phase 3 scored", seen(total), timeout_s=240)
        scorer.settle()  # the monitor's drift and latency counts of the last batch
        exposition, samples = _scrape(monitor.url)
        scores = _read_scores(kafka, output, total - n_bad)
        yield Scenario(
            samples=samples,
            exposition=exposition,
            exporter=monitor.url,
            prometheus=prometheus,
            registry=registry,
            drifted=events[DRIFT_AFTER:],
            scores=scores,
            phase1=phase1,
            after_failure=after_failure,
            monitor=monitor,
            scorer=scorer,
            metrics=metrics,
        )
    finally:
        scorer.stop()
        monitor.close()


def test_counters_add_up(scenario: Scenario) -> None:
    s = scenario.samples
    n_in = _value(s, "scorestream_records_in_total")
    scored = _value(s, "scorestream_records_scored_total")
    dead = {
        r: _value(s, "scorestream_records_dead_lettered_total", reason=r)
        for r in ("DECODE_ERROR", "MISSING_FIELD", "WRONG_TYPE", "NOT_FINITE", "OUT_OF_RANGE")
    }
    assert n_in == 2 * DRIFT_AFTER + EXTRA + sum(BAD.values())
    assert scored == 2 * DRIFT_AFTER + EXTRA
    assert n_in == scored + sum(dead.values())
    assert {r: n for r, n in dead.items() if n} == BAD
    # One latency observation per scored record, each between its event time and now.
    assert _value(s, "scorestream_end_to_end_latency_seconds_count") == scored
    mean = _value(s, "scorestream_end_to_end_latency_seconds_sum") / scored
    assert 0 < mean < 120
    batches = _value(s, "scorestream_batch_duration_seconds_count")
    assert batches >= 6  # at most 2,500 records per trigger
    assert _value(s, "scorestream_batch_id") >= batches - 1
    assert abs(_value(s, "scorestream_last_batch_completed_timestamp_seconds") - time.time()) < 300
    # The monitor's Spark time, next to the batches' own (it overlaps the next batch, on the
    # scorer's accounting thread); shown with -rP.
    spent, total = scenario.monitor.spent_s, _value(s, "scorestream_batch_duration_seconds_sum")
    print(f"monitoring: {spent:.2f} s next to {total:.2f} s of batch time")
    assert spent > 0 and total > 0


def test_model_swap_and_load_failure_are_reported(scenario: Scenario) -> None:
    before, after = scenario.after_failure, scenario.samples
    assert _value(before, "scorestream_model_load_failures_total") == 1
    assert _value(before, "scorestream_model_info", version="1", alias="champion") == 1
    assert _value(after, "scorestream_model_swaps_total") == 1
    info = {dict(labels)["version"] for (name, labels) in after if name == "scorestream_model_info"}
    assert info == {"3"}  # one series: the version serving now
    assert scenario.monitor.reference_version == 3


def test_no_drift_before_the_shift(scenario: Scenario) -> None:
    s = scenario.phase1
    assert _value(s, "scorestream_drift_window_rows") == WINDOW
    for feature in SPEC.feature_names:
        kind = "categorical" if feature in SPEC.categorical else "numeric"
        assert _value(s, "scorestream_feature_psi", feature=feature, kind=kind) < 0.1, feature


def _independent_counts(profile: dict[str, Any], values: np.ndarray, name: str) -> np.ndarray:
    """Bins by the documented rule, recomputed here with plain numpy."""
    if name in profile["categorical"]:
        categories = profile["categorical"][name]["categories"]
        index = np.array(
            [categories.index(v) if v in categories else len(categories) for v in values]
        )
        return np.bincount(index, minlength=len(categories) + 1)
    ref = profile["score"] if name == "score" else profile["numeric"][name]
    edges = np.asarray(ref["edges"], dtype=float)
    index = np.searchsorted(edges, values.astype(float), side="left")
    return np.bincount(index, minlength=len(edges) + 1)


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    r, c = ref / ref.sum(), cur / cur.sum()
    r, c = np.where(r == 0, EPSILON, r), np.where(c == 0, EPSILON, c)
    return float(np.sum((c - r) * np.log(c / r)))


def test_drift_at_a_5000_event_window(scenario: Scenario) -> None:
    s = scenario.samples
    assert _value(s, "scorestream_drift_window_rows") == WINDOW
    profile = scenario.registry.get(3).profile()
    drifted = scenario.drifted
    columns = {n: np.array([e[n] for e in drifted]) for n in SPEC.feature_names}
    columns["score"] = np.array([scenario.scores[str(e["event_id"])] for e in drifted])
    worst = 0.0
    for name, values in columns.items():
        if name == "score":
            ref_counts = np.asarray(profile["score"]["counts"], dtype=float)
            psi, js = (
                s[("scorestream_prediction_psi", frozenset())],
                _value(s, "scorestream_prediction_js_distance"),
            )
        else:
            kind = "categorical" if name in SPEC.categorical else "numeric"
            ref_counts = np.asarray(profile[kind][name]["counts"], dtype=float)
            psi = _value(s, "scorestream_feature_psi", feature=name, kind=kind)
            js = _value(s, "scorestream_feature_js_distance", feature=name, kind=kind)
            assert _value(s, "scorestream_feature_missing_ratio", feature=name) == 0.0
        cur = _independent_counts(profile, values, name).astype(float)
        assert cur.sum() == WINDOW
        want_psi = _psi(ref_counts, cur)
        want_js = float(jensenshannon(ref_counts / ref_counts.sum(), cur / cur.sum(), base=2))
        worst = max(worst, abs(psi - want_psi), abs(js - want_js))
        assert math.isclose(psi, want_psi, rel_tol=0, abs_tol=1e-9), (name, psi, want_psi)
        assert math.isclose(js, want_js, rel_tol=0, abs_tol=1e-9), (name, js, want_js)
        if name == "amount":
            assert psi > 0.25, psi
        elif name != "score":
            assert psi < 0.1, (name, psi)
    assert worst <= 1e-9


def test_drift_alert_fires_in_prometheus(scenario: Scenario) -> None:
    prom = scenario.prometheus

    def firing() -> set[str]:
        alerts = prom.query('ALERTS{alertname="ScorestreamFeatureDrift",alertstate="firing"}')
        return {a["metric"]["feature"] for a in alerts}

    assert _wait("the feature drift alert", firing, timeout_s=60) == {"amount"}
    psi = prom.query('scorestream_feature_psi{feature="amount"}')
    assert float(psi[0]["value"][1]) > 0.25


def _with_bool(expr: str) -> str:
    """Threshold comparisons made `bool`: the series and arithmetic, not the alert's filter."""
    return re.sub(r"(>=|<=|==|!=|>|<)\s*(?=[\d.])", r"\1 bool ", expr)


def test_every_dashboard_and_rule_expression_returns_data(scenario: Scenario) -> None:
    prom = scenario.prometheus
    exprs = [(e, e) for e in dashboard_exprs(DASHBOARD)]
    exprs += [(e, _with_bool(e)) for e in rule_exprs(RULES)]

    def empty() -> list[str]:
        return [shown for shown, expr in exprs if not prom.query(expr)]

    # A rate over [1m] needs two scrapes of the series: poll until every one has data.
    missing = empty()
    deadline = time.monotonic() + 60
    while missing and time.monotonic() < deadline:
        time.sleep(1)  # polling Prometheus with a deadline
        missing = empty()
    assert not missing, f"expressions without data: {missing}"
    # The progress listener computed lag and input rate from Spark's reports while the scorer
    # caught up: after the first trigger (at most 2,500 records) the rest of phase 1 was behind.
    recorded = scenario.metrics.progress
    lags = {lag for _, lag in recorded if lag is not None}
    assert max(lags) >= DRIFT_AFTER + sum(BAD.values()) - 2_500, recorded
    assert max(rate for rate, _ in recorded) > 0, recorded
    # Prometheus scraped the listener's values, not something else (which ones depends on when
    # its one-second scrapes fell).
    scraped = prom.query("scorestream_offsets_behind_latest[10m]")[0]["values"]
    assert {float(v) for _, v in scraped} <= lags | {0.0}, (scraped, lags)  # 0: the initial


def test_promtool_check_metrics_on_the_live_exposition(scenario: Scenario) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH (Debian package 'prometheus')"
    text = _get(scenario.exporter).decode()
    assert "scorestream_feature_psi{" in text and "scorestream_model_info{" in text
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        done.stdout + done.stderr
    )
