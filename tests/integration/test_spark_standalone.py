"""The unchanged `scorestream score` on a Spark standalone cluster scores exactly as local mode,
and so does the spark-submit line of docs/deployment.md, run as written.

A master and one worker are started from pyspark's own launcher (`bin/spark-class`) on
127.0.0.1 with free ports, and stopped by the pids (process groups) this test started. The
executors get a Python that does not exist: the scorer runs only JVM code on executors, so a
cluster (or the compose `spark-worker`, the JVM-only apache/spark image) needs no Python.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.publisher import Publisher
from scorestream.producers.subscriber import consumer
from scorestream.streaming.job import Scorer
from scorestream.streaming.settings import ScorerSettings

EVENTS = 3_000
BAD = [b"not json at all", b'{"event_id": "x-1", "amount": "lots"}', b""]
EVENT_TIME = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own 127.0.0.1 UI
        data: dict[str, Any] = json.loads(resp.read())
        return data


def _poll(what: str, check: Callable[[], bool], timeout_s: float, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)  # polling a server's state with a deadline
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")


def _stop_group(proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """SIGTERM the process group this test created (the worker's executors are in it)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return
    os.killpg(proc.pid, signal.SIGKILL)  # executors left behind by a worker that died


class Standalone:
    """A Spark standalone master and one worker on 127.0.0.1, from pyspark's launcher."""

    def __init__(self, work: Path) -> None:
        import pyspark

        self.home = Path(pyspark.__file__).parent
        self.work = work
        self.port, self.ui, self.worker_port, self.worker_ui = _free_ports(4)
        self.url = f"spark://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def _launch(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SPARK_HOME": str(self.home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": "512m",
            "SPARK_LOG_DIR": str(self.work),
        }
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [str(self.home / "bin" / "spark-class"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def master_state(self) -> dict[str, Any]:
        return _json(f"http://127.0.0.1:{self.ui}/json/")

    def start(self) -> None:
        master = self._launch(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--webui-port", str(self.ui),
        )  # fmt: skip
        _poll("master ALIVE", lambda: self.master_state()["status"] == "ALIVE", 90, master)
        (self.work / "worker").mkdir()
        worker = self._launch(
            "worker",
            "org.apache.spark.deploy.worker.Worker",
            self.url,
            "--host", "127.0.0.1",
            "--port", str(self.worker_port),
            "--webui-port", str(self.worker_ui),
            "--cores", "2",
            "--memory", "2g",
            "--work-dir", str(self.work / "worker"),
        )  # fmt: skip
        _poll("worker registered", lambda: self.master_state()["aliveworkers"] >= 1, 90, worker)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop_group(proc)


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Standalone]:
    cluster = Standalone(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        for proc in cluster.procs:
            assert proc.poll() is not None, f"Spark daemon pid {proc.pid} still running"


def _scores(kafka: KafkaSettings, topic: str, count: int, timeout_s: float) -> dict[str, Any]:
    """event_id -> score record, read until `count` distinct events arrived."""
    seen: dict[str, Any] = {}
    c = consumer(kafka, topic)
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < count and time.monotonic() < deadline:
            for msg in c.consume(num_messages=5000, timeout=0.3):
                if not msg.error():
                    record = json.loads(msg.value())
                    seen[str(record["event_id"])] = record
    finally:
        c.close()
    return seen


DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
SUBMIT_MARK = "<!-- spark-submit line: run as written by test_spark_standalone.py -->"
SUBMITTED_APP = "scorestream-scorer-submitted"  # the line's --conf spark.app.name


def _documented_submit_line() -> str:
    """The bash block that follows the marker in docs/deployment.md, as users copy it."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    assert SUBMIT_MARK in text, f"{DEPLOYMENT} lost its spark-submit marker"
    block = text.split(SUBMIT_MARK, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert "spark-submit" in block and "--connector-jars provided" in block
    return block


def _driver_pid(group: int) -> int | None:
    """The scorestream Python driver spark-submit started in process group `group`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        pgid = int(stat.rsplit(")", 1)[1].split()[2])
        words = [w.decode(errors="replace") for w in cmdline]
        is_python = bool(words) and "python" in Path(words[0]).name
        if (
            pgid == group
            and is_python
            and any(w.endswith("scorestream/__main__.py") for w in words)
        ):
            return int(entry.name)
    return None


def _submit_documented_line(
    standalone: Standalone,
    kafka: KafkaSettings,
    registry: Registry,
    source: str,
    tmp_path: Path,
    topic_factory: Callable[..., str],
) -> tuple[dict[str, Any], str, int]:
    """Run the documented spark-submit line against the cluster; (scores, log, exit code)."""
    out_topic = topic_factory("standalone-submit-out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORESTREAM_")}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_MASTER": standalone.url,
            "DRIVER_HOST": "127.0.0.1",
            "SCORESTREAM_BOOTSTRAP": kafka.bootstrap,
            "SCORESTREAM_REGISTRY": str(registry.root),
            "SCORESTREAM_CHECKPOINT": str(tmp_path / "ckpt-submit"),
            "SCORESTREAM_INPUT_TOPIC": source,
            "SCORESTREAM_OUTPUT_TOPIC": out_topic,
            "SCORESTREAM_DLQ_TOPIC": f"{out_topic}.dlq",
            "SCORESTREAM_METRICS_PORT": "0",
        }
    )
    env.pop("PYSPARK_DRIVER_PYTHON", None)
    env.pop("PYSPARK_PYTHON", None)
    log = tmp_path / "submit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", _documented_submit_line()],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:

        def submitted_on_cluster() -> bool:
            apps = standalone.master_state()["activeapps"]
            return any(a["name"] == SUBMITTED_APP and a["cores"] > 0 for a in apps)

        _poll("spark-submit's scorer registered with the master", submitted_on_cluster, 240, proc)
        scores = _scores(kafka, out_topic, EVENTS, timeout_s=300)
        driver = _driver_pid(proc.pid)
        assert driver is not None, "no scorestream driver under spark-submit"
        os.kill(driver, signal.SIGTERM)  # the CLI's handler: finish the batch, stop
        try:
            code = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            code = -1
    finally:
        _stop_group(proc)
    return scores, log.read_text(errors="replace"), code


def _count(kafka: KafkaSettings, topic: str, at_least: int, timeout_s: float) -> int:
    c = consumer(kafka, topic)
    n = 0
    deadline = time.monotonic() + timeout_s
    try:
        while n < at_least and time.monotonic() < deadline:
            n += sum(1 for m in c.consume(num_messages=1000, timeout=0.3) if not m.error())
    finally:
        c.close()
    return n


# Two Spark daemons, a second driver and its executor: minutes on a loaded 2-core machine.
@pytest.mark.timeout(1500)
def test_standalone_cluster_scores_equal_local_mode(
    standalone: Standalone,
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    source = topic_factory("standalone-in", partitions=6)
    events = []
    for i, event in enumerate(iter_events(EVENTS, seed=77)):
        event["event_time"] = EVENT_TIME + i
        events.append(event)
    with Publisher(kafka) as pub:
        for event in events:
            pub.send(source, json.dumps(event).encode(), key=str(event["event_id"]).encode())
        for raw in BAD:
            pub.send(source, raw)
    total = EVENTS + len(BAD)

    # Local mode: the session's local[*] SparkSession.
    started = time.monotonic()
    local_out = topic_factory("standalone-local-out")
    scorer = Scorer(
        spark,
        kafka,
        ScorerSettings(
            input_topic=source,
            output_topic=local_out,
            dead_letter_topic=f"{local_out}.dlq",
            registry=trained_registry.root,
            checkpoint=tmp_path / "ckpt-local",
        ),
    )
    scorer.start()
    try:
        _poll("local scorer read every record", lambda: scorer.totals.records_in >= total, 300)
    finally:
        scorer.stop()
    scorer.raise_if_failed()
    assert scorer.totals.records_in == total
    local_s = time.monotonic() - started
    started = time.monotonic()

    # The same CLI a user runs, pointed at the cluster; executors have no usable Python.
    cluster_out = topic_factory("standalone-cluster-out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORESTREAM_")}
    env.update(
        {
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": str(tmp_path / "no-python-on-executors"),
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
    )
    log = tmp_path / "scorer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "scorestream", "score",
                "--master", standalone.url,
                "--driver-memory", "1g",
                "--bootstrap", kafka.bootstrap,
                "--registry", str(trained_registry.root),
                "--input-topic", source,
                "--output-topic", cluster_out,
                "--dlq-topic", f"{cluster_out}.dlq",
                "--checkpoint", str(tmp_path / "ckpt-cluster"),
                "--metrics-port", "0",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:

        def app_on_cluster() -> bool:
            apps = standalone.master_state()["activeapps"]
            return any(a["name"] == "scorestream-scorer" and a["cores"] > 0 for a in apps)

        _poll("scorer registered with the master", app_on_cluster, 180, proc)
        executors = _json(f"http://127.0.0.1:{standalone.worker_ui}/json/")["executors"]
        assert executors, "the worker runs no executor for the scorer"
        on_cluster = _scores(kafka, cluster_out, EVENTS, timeout_s=300)
        dead_on_cluster = _count(kafka, f"{cluster_out}.dlq", len(BAD), timeout_s=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # the CLI's handler: finish the batch, stop
        try:
            code = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=30)
    cluster_s = time.monotonic() - started
    output = log.read_text(errors="replace")
    assert code == 0, f"scorer on the cluster exited {code}:\n{output[-3000:]}"
    assert f"stopped: {total} records in, {EVENTS} scored, {len(BAD)} dead-lettered" in output

    # The spark-submit line of docs/deployment.md, as written: spark-submit's master and jars.
    started = time.monotonic()
    submitted, submit_log, submit_code = _submit_documented_line(
        standalone, kafka, trained_registry, source, tmp_path, topic_factory
    )
    submit_s = time.monotonic() - started
    assert submit_code == 0, f"spark-submit exited {submit_code}:\n{submit_log[-3000:]}"
    assert f"stopped: {total} records in, {EVENTS} scored" in submit_log, submit_log[-3000:]
    assert "fetching" not in submit_log  # --connector-jars provided: no Maven

    local = _scores(kafka, local_out, EVENTS, timeout_s=60)
    assert len(local) == EVENTS
    assert set(on_cluster) == set(local) == {str(e["event_id"]) for e in events}
    worst = max(abs(on_cluster[k]["score"] - local[k]["score"]) for k in local)
    assert worst <= 1e-12, f"cluster and local scores differ by up to {worst}"
    assert set(submitted) == set(local)
    worst_submit = max(abs(submitted[k]["score"] - local[k]["score"]) for k in local)
    assert worst_submit <= 1e-12, f"spark-submit and local scores differ by {worst_submit}"
    assert all(on_cluster[k]["model_version"] == local[k]["model_version"] for k in local)
    assert dead_on_cluster == len(BAD) == _count(kafka, f"{local_out}.dlq", len(BAD), 60)
    print(
        f"{EVENTS} events + {len(BAD)} bad: local mode {local_s:.0f} s, standalone cluster "
        f"{cluster_s:.0f} s (CLI start to stop), spark-submit {submit_s:.0f} s; max score "
        f"difference {worst:.1e} (spark-submit {worst_submit:.1e})"
    )
