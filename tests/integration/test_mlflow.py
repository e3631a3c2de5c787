"""MLflow models on a real `mlflow server`: `train --mlflow-model` logs and registers, the
streaming scorer serves models:/NAME@champion with scores equal to batch scoring, moving the
alias hot-swaps at a batch boundary (with the challenger alias shadowed), and a model logged
with plain mlflow.spark.log_model is refused with a message naming what is missing and the
command that attaches it. The commands are the MLflow lines of the README and of
docs/deployment.md, run as written (the model name, the broker and the server's address
substituted, and a smaller training set)."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from streamkit import EVENT_TIME, doc_block, headers, read, read_quiet, substitute

from scorestream.cli import build_parser, main
from scorestream.cli.common import kafka_settings
from scorestream.cli.streaming import scorer_settings
from scorestream.contract.synthetic import SPEC, iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.evaluate import score_column
from scorestream.models.mlflow_source import MlflowSource
from scorestream.models.source import open_source
from scorestream.monitoring.metrics import ScorerMetrics
from scorestream.monitoring.settings import MonitorSettings
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.streaming.job import Scorer, ScorerSettings
from scorestream.streaming.monitor import ScorerMonitor
from scorestream.streaming.shadow import ShadowScorer, ShadowSettings

ROWS = 4_000
MARKER = "<!-- MLflow lines: run as written by tests/integration/test_mlflow.py -->"
README = doc_block("README.md", MARKER)
DEPLOYMENT = doc_block("docs/deployment.md", MARKER)
DOC_SERVER = "MLFLOW_TRACKING_URI"


@contextmanager
def _same_spark_conf(spark: Any) -> Iterator[None]:
    """The CLI run in this process reuses the session's SparkSession and sets its SQL conf."""
    shuffle = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        yield
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", shuffle)


@pytest.fixture(scope="module")
def trained(spark: Any, mlflow_server: str) -> tuple[str, int]:
    """The README's `scorestream train --mlflow-model fraud`: (name, exit code)."""
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    argv = substitute(README.command("train"), {"fraud": name})
    assert "--mlflow-uri" not in argv  # the server comes from the exported variable
    with _same_spark_conf(spark), pytest.MonkeyPatch.context() as env:
        env.setenv(DOC_SERVER, _doc_server(README, mlflow_server))
        code = main([*argv, "--rows", str(ROWS), "--seed", "7"])
    return name, code


def _doc_server(block: Any, server: str) -> str:
    """The suite's server in place of the documented one: the doc exports the variable."""
    assert DOC_SERVER in block.env, f"the doc block exports no {DOC_SERVER}: {block.env}"
    return server


def _documented_scorer(
    block: Any, nth: int, values: dict[str, str], server: str, env: pytest.MonkeyPatch
) -> tuple[ScorerSettings, KafkaSettings]:
    """The scorer and Kafka settings of the block's `nth` score line, parsed as the CLI does."""
    env.setenv(DOC_SERVER, _doc_server(block, server))
    args = build_parser().parse_args(substitute(block.command("score", nth=nth), values))
    settings = scorer_settings(args)
    assert settings.mlflow_uri == server
    return settings, kafka_settings(args)


def _training_files(where: Path, frame: Any, env: pytest.MonkeyPatch) -> None:
    """What the docs' lines name in the working directory: history.csv and spec.toml."""
    env.chdir(where)
    frame.toPandas().to_csv(where / "history.csv", index=False)
    quoted = ", ".join(f'"{n}"' for n in SPEC.numeric_names)
    kinds = ", ".join(f'"{n}"' for n in SPEC.categorical)
    (where / "spec.toml").write_text(
        f'label = "{SPEC.label}"\nnumeric = [{quoted}]\ncategorical = [{kinds}]\n'
    )


def _events(n: int, seed: int, start: int) -> list[dict[str, Any]]:
    events = []
    for i, event in enumerate(iter_events(n, seed=seed)):
        event["event_time"] = EVENT_TIME + start + i
        events.append(event)
    return events


def _wait(what: str, check: Any, scorer: Scorer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        scorer.raise_if_failed()
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)  # polling with a deadline


def test_train_logs_the_model_with_its_artifacts_and_registers_it(
    trained: tuple[str, int], mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    name, code = trained
    assert code == 0
    c = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    versions = c.search_model_versions(f"name = '{name}'")
    assert [v.version for v in versions] == ["1"]
    assert c.get_model_version_by_alias(name, "champion").version == "1"
    run = c.get_run(versions[0].run_id)
    assert 0.5 < run.data.metrics["roc_auc"] <= 1.0
    assert run.data.params["estimator.kind"] == "logistic"
    local = Path(
        download_artifacts(
            artifact_uri=c.get_model_version_download_uri(name, "1"),
            dst_path=str(tmp_path),
            tracking_uri=mlflow_server,
        )
    )
    assert "spark:" in (local / "MLmodel").read_text()
    spec = json.loads((local / "scorestream" / "feature_spec.json").read_text())
    assert spec == SPEC.to_dict()
    profile = json.loads((local / "scorestream" / "profile.json").read_text())
    # The training split's rows (80 % of ROWS, seeded) and a full set of bins per feature.
    assert 0.75 * ROWS < profile["rows"] < 0.85 * ROWS
    assert set(profile["numeric"]) == set(SPEC.numeric_names)
    assert sum(profile["score"]["counts"]) == profile["rows"]


def test_stream_serves_the_mlflow_champion_and_follows_the_alias(
    spark: Any,
    kafka: KafkaSettings,
    trained: tuple[str, int],
    mlflow_server: str,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    import mlflow.spark
    from mlflow import MlflowClient
    from pyspark.sql import functions as F

    name, code = trained
    assert code == 0
    c = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    v1 = c.get_model_version(name, "1")
    # Version 2: the same artifacts registered again; the swap shows in model_version.
    v2 = int(c.create_model_version(name, v1.source, v1.run_id).version)
    c.set_registered_model_alias(name, "challenger", str(v2))

    source_topic, output = topic_factory("mlf-in"), topic_factory("mlf-out")
    shadow_topic = f"{output}.shadow"
    # The README's score line, with this test's topics and a bounded batch size.
    with pytest.MonkeyPatch.context() as env:
        documented, _ = _documented_scorer(README, 0, {"fraud": name}, mlflow_server, env)
    assert documented.model == f"models:/{name}@champion"
    settings = dataclasses.replace(
        documented,
        input_topic=source_topic,
        output_topic=output,
        checkpoint=tmp_path / "checkpoint",
        max_offsets_per_trigger=200,
    )
    metrics = ScorerMetrics(CollectorRegistry())
    monitor = ScorerMonitor(spark, MonitorSettings(metrics_port=0), metrics=metrics)
    source, _ = open_source("", settings.model, mlflow_server)
    shadow = ShadowScorer(kafka, source, ShadowSettings(topic=shadow_topic), metrics)
    scorer = Scorer(spark, kafka, settings, listeners=[monitor, shadow])
    monitor.attach(scorer)
    shadow.attach(scorer)
    first, second = _events(400, seed=31, start=0), _events(400, seed=32, start=10_000)
    scorer.start()
    try:
        scorer.wait_ready()
        assert scorer.holder.version == 1
        # Drift runs against the reference profile that travelled with the version.
        assert monitor.profile is not None and monitor.profile.rows > 0.75 * ROWS
        publish(kafka, ProduceSettings(topic=source_topic), events=first)
        _wait("the first events scored", lambda: scorer.totals.records_in >= 400, scorer, 300)
        scorer.settle()
        c.set_registered_model_alias(name, "champion", str(v2))
        publish(kafka, ProduceSettings(topic=source_topic), events=second)
        _wait("the second events scored", lambda: scorer.totals.records_in >= 800, scorer, 300)
        assert scorer.holder.version == v2
    finally:
        scorer.stop()
        monitor.close()

    messages = read_quiet(kafka, output, 800, quiet_s=2.0, timeout_s=120)
    records = {json.loads(m.value())["event_id"]: json.loads(m.value()) for m in messages}
    assert len(messages) == len(records) == 800  # every event scored once
    assert {records[e["event_id"]]["model_version"] for e in first} == {1}
    assert {records[e["event_id"]]["model_version"] for e in second} == {v2}
    # The swap happened at a batch boundary: per partition, versions never go back.
    by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for m in messages:
        h = headers(m)
        by_partition[int(h["scorestream.source.partition"])].append(
            (int(h["scorestream.source.offset"]), json.loads(m.value())["model_version"])
        )
    for seen in by_partition.values():
        versions = [v for _, v in sorted(seen)]
        assert versions == sorted(versions)
    assert metrics.model_swaps._value.get() == 1

    # Scores equal batch scoring with MLflow's own loader of the same version.
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.spark.load_model(f"models:/{name}/1")
    rows = [
        {**{n: e.get(n) for n in SPEC.feature_names}, "event_id": e["event_id"]}
        for e in first + second
    ]
    frame = spark.createDataFrame(rows).select(
        "event_id",
        *[F.col(n).cast("double").alias(n) for n in SPEC.numeric_names],
        *[F.col(n).cast("string").alias(n) for n in SPEC.categorical],
    )
    expected = {
        r["event_id"]: (r["score"], r["prediction"])
        for r in model.transform(frame)
        .select("event_id", score_column().alias("score"), "prediction")
        .collect()
    }
    worst = max(abs(records[i]["score"] - s) for i, (s, _) in expected.items())
    assert worst <= 1e-9, worst
    assert all(records[i]["prediction"] == p for i, (_, p) in expected.items())
    assert len({round(s, 6) for s, _ in expected.values()}) > 100  # not a constant

    # The challenger alias was shadowed while v1 served: same artifacts, same scores.
    shadowed = [json.loads(m.value()) for m in read(kafka, shadow_topic, 400, timeout_s=60)]
    assert len(shadowed) == 400 and {r["challenger_version"] for r in shadowed} == {v2}
    assert {r["champion_version"] for r in shadowed} == {1}
    assert all(abs(r["challenger_score"] - r["champion_score"]) < 1e-12 for r in shadowed)


def test_a_plain_mlflow_spark_model_is_refused_until_its_artifacts_are_attached(
    spark: Any,
    kafka: KafkaSettings,
    mlflow_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mlflow
    import mlflow.spark
    import pyspark

    from scorestream.models.pipeline import EstimatorSettings, build_pipeline
    from scorestream.models.train import synthetic_frame

    name = f"plain-{uuid.uuid4().hex[:8]}"
    frame = synthetic_frame(spark, 2_000, seed=5)
    model = build_pipeline(SPEC, EstimatorSettings(max_iter=20)).fit(frame)
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.spark.log_model(
        model,
        "model",
        registered_model_name=name,
        pip_requirements=[f"pyspark=={pyspark.__version__}"],
    )
    ref = f"models:/{name}/1"
    args = ["--mlflow-uri", mlflow_server, "--bootstrap", kafka.bootstrap]
    with _same_spark_conf(spark):
        code = main(["score", "--model", ref, *args, "--checkpoint", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "lacks the scorestream artifacts scorestream/feature_spec.json" in err
    assert "scorestream/profile.json" in err
    assert f"scorestream mlflow-attach {ref} --spec SPEC.toml --data TRAINING.csv" in err

    # The fix the message names, as the README writes it: a spec file and the training rows
    # (history.csv) in the working directory.
    _training_files(tmp_path, frame, monkeypatch)
    monkeypatch.setenv(DOC_SERVER, _doc_server(README, mlflow_server))
    attach = substitute(README.command("mlflow-attach"), {"models:/fraud/3": ref})
    with _same_spark_conf(spark):
        code = main(attach)
    assert code == 0, capsys.readouterr().err
    entry, loaded = MlflowSource(mlflow_server, name).load("1")
    assert entry.spec.feature_names == SPEC.feature_names
    assert entry.profile()["rows"] == 2_000
    assert len(loaded.stages) == len(model.stages)


def test_the_deployment_guide_trains_from_a_file_and_its_score_lines_load_the_model(
    spark: Any,
    kafka: KafkaSettings,
    mlflow_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/deployment.md's lines: `train --data history.csv --spec spec.toml --mlflow-model`,
    then both score lines (alias and pinned version) load and validate that version."""
    from scorestream.models.train import synthetic_frame

    name = f"guide-{uuid.uuid4().hex[:8]}"
    _training_files(tmp_path, synthetic_frame(spark, 2_000, seed=9), monkeypatch)
    monkeypatch.setenv(DOC_SERVER, _doc_server(DEPLOYMENT, mlflow_server))
    with _same_spark_conf(spark):
        code = main(substitute(DEPLOYMENT.command("train"), {"fraud": name}))
    assert code == 0, capsys.readouterr().err
    values = {"fraud/3": f"{name}/1", "fraud": name, "broker1:9092": kafka.bootstrap}
    for nth, model in ((0, f"models:/{name}@champion"), (1, f"models:/{name}/1")):
        settings, brokers = _documented_scorer(DEPLOYMENT, nth, values, mlflow_server, monkeypatch)
        assert settings.model == model and brokers.bootstrap == kafka.bootstrap
        scorer = Scorer(spark, brokers, settings)
        assert scorer.holder.version == 1
        assert scorer.holder.spec.feature_names == SPEC.feature_names
