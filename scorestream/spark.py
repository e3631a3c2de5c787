"""The one place that builds the SparkSession: local[*] unless a master is set elsewhere
(spark-submit, spark.master), bound to 127.0.0.1, connectors fetched or provided."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream import jars
from scorestream.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"
# fetch: resolve Spark's Kafka and Avro connectors with Maven and put them on spark.jars;
# provided: the cluster's classpath or spark-submit --packages/--jars already has them.
CONNECTOR_SOURCES = ("fetch", "provided")


@dataclass(frozen=True)
class SparkSettings:
    """How to reach Spark."""

    # None: the master spark-submit or spark.master gives, else local[*].
    master: str | None = None
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
    connectors: str = "fetch"
    extra_jars: tuple[str, ...] = ()  # more jars for spark.jars (a JDBC driver, PMML)
    # Any Spark setting, applied last so it wins over everything above.
    conf: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.connectors not in CONNECTOR_SOURCES:
            msg = (
                f"connector jars {self.connectors!r} is not valid; expected one of "
                f"{', '.join(CONNECTOR_SOURCES)}"
            )
            raise ConfigError(msg)


def parse_conf(items: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`--conf key=value` items as pairs; a malformed one is a ConfigError naming it."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not key.strip().startswith("spark."):
            msg = f"--conf {item!r} is not valid; expected spark.<setting>=<value>"
            raise ConfigError(msg)
        pairs.append((key.strip(), value))
    return tuple(pairs)


def _under_spark_submit(environ: Mapping[str, str]) -> bool:
    """spark-submit starts the JVM first and hands Python its gateway port."""
    return bool(environ.get("PYSPARK_GATEWAY_PORT"))


def preset_master(
    conf: tuple[tuple[str, str], ...] = (), environ: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """(master, where it comes from) when something other than --master sets spark.master."""
    env = os.environ if environ is None else environ
    for key, value in reversed(conf):
        if key == "spark.master":
            return value, "--conf spark.master"
    if _under_spark_submit(env):
        from pyspark import SparkContext

        SparkContext._ensure_initialized()  # joins spark-submit's JVM, starts none
        jvm = SparkContext._jvm
        assert jvm is not None
        value = jvm.java.lang.System.getProperty("spark.master")
        return (str(value), "spark-submit") if value else None
    words = shlex.split(env.get("PYSPARK_SUBMIT_ARGS", ""))
    for i, word in enumerate(words[:-1]):
        if word == "--master":
            return words[i + 1], "PYSPARK_SUBMIT_ARGS"
    if env.get("MASTER"):
        return env["MASTER"], "the MASTER environment variable"
    conf_dir = env.get("SPARK_CONF_DIR") or (
        str(Path(env["SPARK_HOME"]) / "conf") if env.get("SPARK_HOME") else ""
    )
    defaults = Path(conf_dir) / "spark-defaults.conf" if conf_dir else None
    if defaults is not None and defaults.is_file():
        for line in defaults.read_text(encoding="utf-8").splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0] == "spark.master":
                return parts[1].strip(), str(defaults)
    return None


def choose_master(settings: SparkSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The master to give `.master()`, or None when it is already set elsewhere."""
    preset = preset_master(settings.conf, environ)
    if preset is None:
        return settings.master or DEFAULT_MASTER
    value, source = preset
    if settings.master and settings.master != value:
        msg = (
            f"--master {settings.master} disagrees with {source} ({value}); "
            "give the master in one place"
        )
        raise ConfigError(msg)
    return None


def session(settings: SparkSettings | None = None) -> SparkSession:
    """Get or create the SparkSession with the Kafka and Avro connectors on its classpath."""
    from pyspark.sql import SparkSession

    s = settings or SparkSettings()
    # Without these Spark binds the machine's other address (see README, troubleshooting).
    if s.driver_host == "127.0.0.1":
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON") or _python())
    master = choose_master(s)
    builder = SparkSession.builder.appName(s.app_name)
    if master is not None:
        builder = builder.master(master)
    spark_jars = [str(j) for j in jars.spark_connector_jars()] if s.connectors == "fetch" else []
    spark_jars += list(s.extra_jars)
    if spark_jars:
        builder = builder.config("spark.jars", ",".join(spark_jars))
    if not _under_spark_submit(os.environ):
        # Only read when this process starts the JVM; under spark-submit it has started.
        builder = builder.config("spark.driver.memory", s.driver_memory)
    builder = (
        builder.config("spark.driver.host", s.driver_host)
        .config("spark.driver.bindAddress", s.driver_host)
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
