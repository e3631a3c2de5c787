"""One real Kafka broker and one real SparkSession for the whole integration session.

Both are started by the project's own code (the same `LocalKafka` that `scorestream stack up`
uses) on 127.0.0.1 ports nobody else holds, and stopped by pid at the end. Nothing is mocked
and nothing is skipped: if the broker or Spark cannot start, every test here fails loudly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import work_units

# Fixtures of the servers some tests need, one module each, imported here so that they are
# found however pytest is invoked (`pytest_plugins` only works in the top-level conftest).
from fixtures_estimators import estimator_registry  # noqa: F401
from fixtures_hdfs import hdfs  # noqa: F401
from fixtures_mlflow import mlflow_server  # noqa: F401
from fixtures_postgres import postgres  # noqa: F401
from fixtures_schema_registry import schema_registry  # noqa: F401
from fixtures_serve import serve_factory  # noqa: F401
from fixtures_sink_db import sink_postgres  # noqa: F401

from scorestream.contract.synthetic import SPEC
from scorestream.kafka import KafkaSettings, ensure_topics
from scorestream.models.registry import Registry
from scorestream.models.train import TrainSettings, synthetic_frame, train
from scorestream.signals import interrupt_on_sigterm
from scorestream.stack import LocalKafka, StackSettings, free_port_block

TopicFactory = Callable[..., str]


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (a CI timeout, a `kill` of the run's process group) ends the session as Ctrl-C
    does, so the fixtures' teardown stops every server by pid instead of leaving it running."""
    interrupt_on_sigterm()
    config.pluginmanager.register(work_units.GroupCheck(), "work-unit-check")
    if config.getoption("record_durations", False):
        config.pluginmanager.register(work_units.DurationRecorder(), "record-durations")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Work units for `--dist loadgroup`, longest first (tests/work_units.py)."""
    work_units.order(items)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp("stack"), port=free_port_block(1), heap="512m"
    )
    local = LocalKafka(settings)
    local.up()
    try:
        yield local
    finally:
        stopped = local.down()
        assert not local.running(), f"broker pids still alive after down ({stopped} stopped)"


@pytest.fixture(scope="session")
def kafka(stack: LocalKafka) -> KafkaSettings:
    return stack.kafka


@pytest.fixture(scope="session")
def spark(stack: LocalKafka) -> Iterator[Any]:
    """Depends on the broker so the broker outlives Spark's cached Kafka producers."""
    from scorestream.spark import SparkSettings, session

    # This JVM lives as long as the session and runs most tests' Spark work: the C2 compiler
    # pays back here, so it starts without TEST_JAVA_OPTIONS (C1 only, see the Makefile), which
    # stays for the short-lived JVMs the tests start.
    options = os.environ.pop("JDK_JAVA_OPTIONS", None)
    try:
        spark = session(SparkSettings(app_name="scorestream-tests", shuffle_partitions=2))
    finally:
        if options is not None:
            os.environ["JDK_JAVA_OPTIONS"] = options
    try:
        yield spark
    finally:
        spark.stop()


@pytest.fixture
def topic_factory(kafka: KafkaSettings) -> TopicFactory:
    """Create a topic with a unique name; defaults overridable per call."""

    def make(prefix: str = "t", partitions: int = 2, **config: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        ensure_topics(kafka, [name], partitions=partitions, config=config or None)
        return name

    return make


@contextlib.contextmanager
def _run_wide(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A directory every pytest worker of this run shares, held under an exclusive lock.

    The workers' temp dirs have one parent per run; with one process (no xdist) the lock
    only ever has one holder.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield shared / name


@pytest.fixture(scope="session")
def trained_registry(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A registry holding one small logistic model on the synthetic data, promoted champion.

    Trained once per run: the first worker to ask trains it while the other waits, and both
    read it (a test that changes a registry copies this one first)."""
    with _run_wide(tmp_path_factory, "trained-registry") as root:
        done = root / ".trained"
        if not done.is_file():
            shutil.rmtree(root, ignore_errors=True)  # a worker that failed half-way
            train(
                spark,
                synthetic_frame(spark, 6_000, seed=11),
                SPEC,
                TrainSettings(registry=root, seed=11),
                fingerprint="synthetic:rows=6000:seed=11",
                source="synthetic",
                progress=lambda _m: None,
            )
            done.write_text("")
    return Registry(root)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return tmp_path / "checkpoint"
