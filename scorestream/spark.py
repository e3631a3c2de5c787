"""The one place that builds the SparkSession: local[*], bound to 127.0.0.1, connectors on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream import jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class SparkSettings:
    """How to reach Spark."""

    master: str = "local[*]"
    app_name: str = "scorestream"
    shuffle_partitions: int = 4
    driver_memory: str = "2g"
    # The address executors use to reach the driver: 127.0.0.1 for local mode and a cluster
    # on this machine; the driver's routable host name on a real cluster (or in compose).
    driver_host: str = "127.0.0.1"
    ui: bool = False
    # The JVM's own log level (log4j2): ERROR keeps Spark's and Hadoop's start-up warnings out
    # of the user's terminal; `--log-level DEBUG` asks for WARN, Spark's default.
    log_level: str = "ERROR"
    conf: tuple[tuple[str, str], ...] = field(default=())


def session(settings: SparkSettings | None = None) -> SparkSession:
    """Get or create the SparkSession with the Kafka and Avro connectors on its classpath."""
    from pyspark.sql import SparkSession

    s = settings or SparkSettings()
    # Without these Spark binds the machine's other address (see README, troubleshooting).
    if s.driver_host == "127.0.0.1":
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON") or _python())
    connector_jars = ",".join(str(j) for j in jars.spark_connector_jars())
    builder = (
        SparkSession.builder.master(s.master)
        .appName(s.app_name)
        .config("spark.jars", connector_jars)
        .config("spark.driver.host", s.driver_host)
        .config("spark.driver.bindAddress", s.driver_host)
        .config("spark.driver.memory", s.driver_memory)
        .config("spark.ui.enabled", str(s.ui).lower())
        .config("spark.sql.shuffle.partitions", str(s.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Read when pyspark starts the driver JVM, so even start-up messages follow the level.
        .config("spark.driver.extraJavaOptions", _log_options(s.log_level))
    )
    for key, value in s.conf:
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(s.log_level)
    return spark


def _log_options(level: str) -> str:
    config = Path(str(resources.files("scorestream") / "log4j2.properties"))
    return f"-Dlog4j2.configurationFile={config.as_uri()} -Dscorestream.jvm.level={level.lower()}"


def jvm_log_level(python_level: str) -> str:
    """The JVM's log level for scorestream's own: WARN only when DEBUG is asked for."""
    return "WARN" if python_level.upper() == "DEBUG" else "ERROR"


def _python() -> str:
    import sys

    return sys.executable
