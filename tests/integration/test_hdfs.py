"""The registry, the checkpoint and batch scoring on a real HDFS (MiniDFSCluster on 127.0.0.1):
`train` publishes there, the scorer keeps its checkpoint there through a kill -9 and resumes
with nothing lost, alias changes stay serialised, batch-score reads and writes hdfs:// URIs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fixtures_hdfs import Hdfs
from streamkit import EVENT_TIME, kill_group, read_ids, scorer_process

from scorestream import fs
from scorestream.contract.synthetic import SPEC, generate_columns, iter_events
from scorestream.errors import ModelError
from scorestream.kafka import KafkaSettings
from scorestream.models.batch import BatchSettings, batch_score
from scorestream.models.registry import Registry
from scorestream.models.train import TrainSettings, synthetic_frame, train
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.producers.subscriber import consumer

EVENTS = 10_000
BATCH = 2_500
KILL_AT = 3_000  # output records seen before the kill -9


def _hadoop_copy(spark: Any, source: fs.Location, target: fs.Location) -> None:
    hconf = spark._jsc.hadoopConfiguration()
    hadoop = spark._jvm.org.apache.hadoop.fs
    src, dst = hadoop.Path(str(source)), hadoop.Path(str(target))
    copy = hadoop.FileUtil.copy
    assert copy(src.getFileSystem(hconf), src, dst.getFileSystem(hconf), dst, False, hconf)


@pytest.fixture(scope="module")
def hdfs_registry(spark: Any, hdfs: Hdfs) -> Registry:
    """v1 trained and published on HDFS by `train` in this session's Spark; v2 published by
    `Registry.publish` from a copy of v1's model (training twice is minutes on a busy machine)."""
    root = hdfs.path("models", "registry")
    first = train(
        spark,
        synthetic_frame(spark, 2_000, seed=5),
        SPEC,
        TrainSettings(registry=root, seed=5),
        fingerprint="synthetic:5",
        source="synthetic",
        progress=lambda _m: None,
    )
    reg = Registry(root, spark)

    def write(model_dir: fs.Location) -> dict[str, Any]:
        _hadoop_copy(spark, first.model_path, model_dir)
        return {key: v for key, v in first.metadata.items() if key != "version"}

    assert reg.publish(write, first.profile()).version == 2
    return reg


@pytest.mark.timeout(1200)  # its fixtures start HDFS, Kafka, Spark and train: slow when busy
def test_the_registry_lives_on_hdfs(spark: Any, hdfs: Hdfs, hdfs_registry: Registry) -> None:
    reg = hdfs_registry
    assert str(reg.root) == hdfs.path("models", "registry")  # the URI kept, not hdfs:/...
    assert reg.versions() == [1, 2]
    assert reg.resolve("champion") == 1
    entry, model = reg.load("champion")
    assert str(entry.model_path) == hdfs.path("models", "registry", "versions", "v1", "model")
    assert entry.profile()["rows"] > 0
    store = fs.store(reg.root, spark)
    assert store.names(reg.versions_dir) == ["v1", "v2"]
    assert not store.names(reg.root / ".staging")  # staging cleaned after each publish
    # Nothing of it on the local disk: a collapsed `hdfs:/...` path would have landed there.
    assert not Path("hdfs:").exists()
    assert model.transform(synthetic_frame(spark, 50, seed=1)).count() == 50


def test_concurrent_promotes_on_hdfs_lose_nothing(spark: Any, hdfs_registry: Registry) -> None:
    threads, each = 3, 6
    start = threading.Barrier(threads)
    errors: list[str] = []
    before = len(hdfs_registry.alias_log("challenger"))

    def writer(i: int) -> None:
        local = Registry(hdfs_registry.root, spark)
        start.wait(timeout=60)
        try:
            for n in range(each):
                local.promote(1 + (i + n) % 2, "challenger", reason=f"thread {i} #{n}")
        except Exception as exc:
            errors.append(repr(exc))

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=300)
    assert not errors, errors[:3]
    log = hdfs_registry.alias_log("challenger")[before:]
    assert len(log) == threads * each
    reasons = Counter(r["reason"] for r in log)
    assert len(reasons) == threads * each  # every change claimed exactly one generation
    assert [r["generation"] for r in log] == list(range(before + 1, before + 1 + threads * each))
    assert hdfs_registry.alias("challenger") == log[-1]


def test_rollback_to_a_missing_version_on_hdfs_is_refused(
    spark: Any, hdfs: Hdfs, hdfs_registry: Registry
) -> None:
    root = hdfs.path("models", "rollback")
    store = fs.store(fs.location(root), spark)
    store.mkdirs(fs.location(root))
    reg = Registry(root, spark)
    for v in (1, 2):
        _hadoop_copy(spark, hdfs_registry.versions_dir / f"v{v}", reg.versions_dir / f"v{v}")
    reg.promote(1)
    reg.promote(2)
    store.delete(reg.versions_dir / "v1", recursive=True)
    with pytest.raises(ModelError, match=r"cannot roll 'champion' back to v1: model version v1"):
        reg.rollback()
    assert reg.resolve("champion") == 2


def test_batch_score_reads_and_writes_hdfs(spark: Any, hdfs: Hdfs, hdfs_registry: Registry) -> None:
    rows = pd.DataFrame(generate_columns(800, seed=3)).drop(columns=[SPEC.label])
    source, output = hdfs.path("batch", "events.csv"), hdfs.path("batch", "scores")
    spark.createDataFrame(rows).coalesce(1).write.option("header", "true").csv(source)
    result = batch_score(spark, hdfs_registry, BatchSettings(input=source, output=output))
    assert result == {"input": 800, "scored": 800, "model_version": 1}
    scored = spark.read.parquet(output)
    assert scored.count() == 800
    assert scored.where("score between 0 and 1").count() == 800


def _cli(args: list[str], log: Path, timeout_s: float) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORESTREAM_")}
    with log.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "scorestream", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=timeout_s,
            check=False,
        )
    text = log.read_text(errors="replace")
    assert done.returncode == 0, f"scorestream {args[0]} exited {done.returncode}:\n{text[-3000:]}"
    return text


@pytest.mark.timeout(1200)
def test_train_then_score_with_an_hdfs_checkpoint_survives_kill_9(
    spark: Any, hdfs: Hdfs, kafka: KafkaSettings, topic_factory: Any, tmp_path: Path
) -> None:
    """What docs/deployment.md shows: train to an hdfs:// registry, score with an hdfs://
    checkpoint (exactly-once), kill -9 mid-stream, restart: every event once, none lost."""
    started = time.monotonic()
    registry, checkpoint = hdfs.path("crash", "registry"), hdfs.path("crash", "checkpoint")
    spark_flags = ["--master", "local[2]", "--driver-memory", "1g"]
    train_args = ["train", "--registry", registry, "--rows", "2000", *spark_flags]
    text = _cli(train_args, tmp_path / "train.log", timeout_s=600)
    assert f"v1 ({registry}/versions/v1)" in text
    source, output = topic_factory("hdfs-in"), topic_factory("hdfs-out")
    events = [e | {"event_time": EVENT_TIME + i} for i, e in enumerate(iter_events(EVENTS, 62))]
    assert publish(kafka, ProduceSettings(topic=source), events) == EVENTS
    wanted = {e["event_id"] for e in events}
    args = [
        *("--bootstrap", kafka.bootstrap, "--registry", registry),
        *("--input-topic", source, "--output-topic", output, "--checkpoint", checkpoint),
        *("--max-offsets-per-trigger", str(BATCH), "--exactly-once"),
        *spark_flags,
        *("--metrics-port", "0", "--drift", "false"),
    ]
    log = tmp_path / "scorer.log"
    watcher = consumer(kafka, output)  # read_uncommitted: sees progress as it is written
    seen = 0
    proc = scorer_process(args, log)
    try:
        deadline = time.monotonic() + 360
        while seen < KILL_AT:
            assert proc.poll() is None, f"scorer exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"only {seen} outputs:\n{log.read_text()[-3000:]}"
            seen += sum(1 for m in watcher.consume(1000, timeout=0.2) if not m.error())
        kill_group(proc)
        store = fs.store(fs.location(checkpoint), spark)
        assert store.is_file(fs.location(checkpoint) / "scorestream.json")
        assert store.names(fs.location(checkpoint) / "commits"), "no batch committed on HDFS"
        proc = scorer_process(args, log)
        read = read_ids(
            kafka, output, wanted, quiet_s=8.0, timeout_s=420, isolation="read_committed"
        )
    finally:
        watcher.close()
        kill_group(proc)  # never leaves a scorer or its JVM behind
    ids = Counter(read)
    duplicates = sum(n - 1 for n in ids.values())
    missing = wanted - set(ids)
    print(
        f"\nhdfs checkpoint: kill -9 after {seen} outputs, {len(read)} records read, "
        f"{duplicates} duplicates, {len(missing)} missing, {time.monotonic() - started:.0f} s"
    )
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:3]}"
    assert duplicates == 0, f"{duplicates} duplicates under read_committed"
    assert len(read) == EVENTS
