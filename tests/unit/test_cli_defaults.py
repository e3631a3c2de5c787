"""Each CLI default is written once, in a settings field: a command run with no flags and no
environment builds exactly the settings a program gets from the dataclass defaults."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from scorestream.cli import build_parser


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SCORESTREAM_*, DEMO_* or MLflow variable of the caller's shell reaches the parser."""
    for name in list(os.environ):
        if name.startswith(("SCORESTREAM_", "DEMO_")) or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)


def parse(*argv: str) -> Any:
    return build_parser().parse_args(list(argv))


def assert_same(built: Any, default: Any, command: str) -> None:
    """Field by field, so a failure names the flag's field and both values."""
    assert type(built) is type(default)
    for f in dataclasses.fields(default):
        got, want = getattr(built, f.name), getattr(default, f.name)
        assert got == want, f"{command} {f.name}: the CLI gives {got!r}, the field {want!r}"


def test_produce_flags_default_to_the_produce_settings_fields() -> None:
    from scorestream.cli.producers import produce_settings
    from scorestream.producers.publisher import ProduceSettings

    assert_same(produce_settings(parse("produce")), ProduceSettings(), "produce")


def test_train_flags_default_to_the_train_and_estimator_settings_fields() -> None:
    from scorestream.cli.train import train_settings
    from scorestream.models.pipeline import EstimatorSettings
    from scorestream.models.train import TrainSettings
    from scorestream.streaming.settings import ScorerSettings

    built = train_settings(parse("train"))
    # The registry has no default of its own: train publishes where the scorer reads.
    assert Path(built.registry) == ScorerSettings.registry
    assert_same(built.estimator, EstimatorSettings(), "train")
    assert_same(built, TrainSettings(registry=built.registry), "train")


def test_train_and_attach_spec_flags_default_to_the_feature_spec_fields() -> None:
    from scorestream.contract.spec import FeatureSpec

    for argv in (["train"], ["mlflow-attach", "models:/m/1", "--data", "rows.csv"]):
        args = parse(*argv)
        assert (args.event_id, args.event_time) == (FeatureSpec.event_id, FeatureSpec.event_time)


def test_batch_score_flags_default_to_the_batch_settings_fields() -> None:
    from scorestream.cli.batch import batch_settings
    from scorestream.models.batch import BatchSettings

    # BatchSettings needs an input and an output or a table: the only flags given.
    built = batch_settings(parse("batch-score", "--input", "in.csv", "--output", "out"))
    assert_same(built, BatchSettings(input="in.csv", output="out"), "batch-score")
    assert parse("batch-score", "--input", "in.csv").output == BatchSettings.output


def test_sink_flags_default_to_the_sink_settings_fields() -> None:
    from scorestream.cli.sink import sink_settings
    from scorestream.sink.run import SinkSettings
    from scorestream.sink.target import parse_url

    url = "sqlite:///scores.db"  # the one flag without a default: where to write
    built = sink_settings(parse("sink", "--url", url))
    assert_same(built, SinkSettings(target=parse_url(url)), "sink")


def test_serve_flags_default_to_the_serve_settings_fields() -> None:
    from scorestream.cli.serve import serve_settings
    from scorestream.serve.settings import ServeSettings

    assert_same(serve_settings(parse("serve")), ServeSettings(), "serve")


def test_retrain_flags_default_to_the_window_schedule_and_trigger_fields() -> None:
    from scorestream.cli.retrain import plan
    from scorestream.models.retrain import RetrainSettings
    from scorestream.monitoring.drift_trigger import DriftTrigger
    from scorestream.streaming.retrain import Schedule
    from scorestream.streaming.settings import ScorerSettings
    from scorestream.streaming.training_set import DataWindow

    settings, window, schedule = plan(parse("retrain"))
    assert settings.registry == ScorerSettings.registry
    assert_same(settings, RetrainSettings(registry=settings.registry), "retrain")
    assert_same(window, DataWindow(), "retrain")
    assert_same(schedule, Schedule(), "retrain")
    url = "http://127.0.0.1:9400/metrics"  # a drift trigger needs its URL
    _, _, on_drift = plan(parse("retrain", "--on-drift", url))
    assert on_drift.drift is not None
    assert_same(on_drift.drift, DriftTrigger(url), "retrain --on-drift")


def test_monitoring_flags_default_to_the_monitor_settings_fields() -> None:
    from scorestream.cli.monitoring import monitor_settings
    from scorestream.monitoring.settings import MonitorSettings

    for command in ("score", "demo"):
        assert_same(monitor_settings(parse(command)), MonitorSettings(), command)


def test_operation_flags_default_to_the_feedback_and_realtime_settings_fields() -> None:
    from scorestream.cli.operations import feedback_settings, realtime_settings
    from scorestream.streaming.feedback import FeedbackSettings
    from scorestream.streaming.realtime import RealtimeSettings

    built = feedback_settings(parse("score", "--labels-topic", "labels"))  # feedback needs it
    assert built is not None
    assert_same(built, FeedbackSettings(labels_topic="labels"), "score")
    assert_same(realtime_settings(parse("score")), RealtimeSettings(), "score")


def test_shared_flags_default_to_the_spark_stack_and_kafka_settings_fields() -> None:
    from scorestream.cli.common import kafka_settings, spark_settings, stack_settings
    from scorestream.kafka import KafkaSettings
    from scorestream.spark import SparkSettings
    from scorestream.stack import StackSettings

    args = parse("score")
    assert_same(spark_settings(args, "app"), SparkSettings(app_name="app"), "score")
    assert_same(kafka_settings(args), KafkaSettings(), "score")
    assert_same(stack_settings(parse("stack", "status")), StackSettings(), "stack")


def test_demo_flags_default_to_the_demo_settings_fields() -> None:
    from scorestream.cli import demo_settings
    from scorestream.demo import DemoSettings

    assert_same(demo_settings(parse("demo")), DemoSettings(), "demo")
