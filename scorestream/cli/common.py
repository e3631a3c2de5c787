"""Arguments shared by the subcommands: Kafka connection, Spark, registry (env var defaults)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream import options as opt
from scorestream.kafka import KafkaSettings, read_properties
from scorestream.schema_registry import SchemaRegistrySettings
from scorestream.spark import SparkSettings
from scorestream.stack import LocalKafka, StackSettings
from scorestream.streaming.settings import ScorerSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Handler = Callable[[argparse.Namespace], int]
Command = Callable[[str, Handler, str], argparse.ArgumentParser]


def kafka_args(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--bootstrap",
        "--bootstrap-server",
        "-b",
        env="SCORESTREAM_BOOTSTRAP",
        default=KafkaSettings.bootstrap,
        help="Kafka bootstrap servers (-b and --bootstrap-server as in Kafka's tools and kcat)",
    )
    opt.add(
        p,
        "--kafka-config",
        env="SCORESTREAM_KAFKA_CONFIG",
        default=None,
        help="client.properties file with extra Kafka client settings (security, SASL, SSL)",
    )
    p.add_argument(
        "-X",
        "--kafka-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Kafka client setting, repeatable; wins over --kafka-config "
        "[env: none, default: none]",
    )


def kafka_settings(args: argparse.Namespace) -> KafkaSettings:
    return KafkaSettings.build(args.bootstrap, args.kafka_config, args.kafka_option)


def schema_registry_args(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--schema-registry",
        env="SCORESTREAM_SCHEMA_REGISTRY",
        default="",
        help="Confluent-compatible Schema Registry URL for confluent-avro (empty: "
        "schema.registry.url of --kafka-config, else none); credentials and TLS settings "
        "from --kafka-config or --schema-registry-option",
    )
    p.add_argument(
        "--schema-registry-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Schema Registry client setting, repeatable, e.g. ssl.ca.location=ca.pem; wins "
        "over --kafka-config [env: none, default: none]",
    )


def schema_registry_settings(args: argparse.Namespace) -> SchemaRegistrySettings | None:
    props = read_properties(Path(args.kafka_config)) if args.kafka_config else {}
    return SchemaRegistrySettings.build(args.schema_registry, props, args.schema_registry_option)


def spark_args(p: argparse.ArgumentParser) -> None:
    d = SparkSettings()  # each default is the settings field's, written once
    opt.add(
        p,
        "--master",
        env="SCORESTREAM_SPARK_MASTER",
        default=d.master,
        help="Spark master URL (unset: spark-submit's --master or spark.master, else local[*])",
    )
    p.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="spark_conf",
        help="any Spark setting, repeatable, as with spark-submit; wins over scorestream's own "
        "[env: none, default: none]",
    )
    opt.add(
        p,
        "--connector-jars",
        env="SCORESTREAM_CONNECTOR_JARS",
        default=d.connectors,
        choices=["fetch", "provided"],
        help="fetch Spark's Kafka/Avro connectors with Maven, or use the ones the cluster or "
        "spark-submit --packages/--jars provides",
    )
    opt.add(
        p,
        "--spark-ui",
        env="SCORESTREAM_SPARK_UI",
        default=d.ui,
        type=opt.bool_flag,
        nargs="?",
        const=True,
        help="turn Spark's web UI on (port 4040 of the driver host, or spark.ui.port)",
    )
    opt.add(
        p,
        "--driver-memory",
        env="SCORESTREAM_DRIVER_MEMORY",
        default=d.driver_memory,
        help="Spark driver memory",
    )
    opt.add(
        p,
        "--driver-host",
        env="SCORESTREAM_DRIVER_HOST",
        default=d.driver_host,
        help="address Spark executors reach the driver at (its host name on a cluster)",
    )


def spark_settings(
    args: argparse.Namespace,
    app: str,
    conf: tuple[tuple[str, str], ...] = (),
    extra_jars: tuple[str, ...] = (),
    master: str | None = None,
) -> SparkSettings:
    """The SparkSettings of the shared Spark flags; a command's own `conf` and `extra_jars`
    come first, the user's --conf last (it wins); `master` overrides --master."""
    from scorestream.spark import jvm_log_level, parse_conf

    return SparkSettings(
        master=master or args.master,
        app_name=app,
        driver_memory=args.driver_memory,
        driver_host=args.driver_host,
        ui=args.spark_ui,
        log_level=jvm_log_level(getattr(args, "log_level", "WARNING")),
        connectors=args.connector_jars,
        extra_jars=extra_jars,
        conf=(*conf, *parse_conf(args.spark_conf)),
    )


def spark_session(
    args: argparse.Namespace,
    app: str,
    conf: tuple[tuple[str, str], ...] = (),
    extra_jars: tuple[str, ...] = (),
    master: str | None = None,
) -> SparkSession:
    """The SparkSession of `spark_settings`."""
    from scorestream.spark import session

    return session(spark_settings(args, app, conf, extra_jars, master))


def registry_arg(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--registry",
        env="SCORESTREAM_REGISTRY",
        # The registry the scorer reads: train, models, batch-score... share its default.
        default=str(ScorerSettings.registry),
        help="model registry root: a directory or a Hadoop URI (hdfs://nn:8020/models)",
    )


def mlflow_arg(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--mlflow-uri",
        env="MLFLOW_TRACKING_URI",
        default=ScorerSettings.mlflow_uri,  # TrainSettings' is the same
        help="MLflow tracking server (and model registry) of models:/NAME@ALIAS references",
    )


def stack_args(p: argparse.ArgumentParser) -> None:
    d = StackSettings()  # each default is the settings field's, written once
    opt.add(
        p,
        "--state-dir",
        env="SCORESTREAM_STACK_DIR",
        default=str(d.state_dir),
        help="where the local broker keeps its data, logs and pids",
    )
    opt.add(
        p,
        "--port",
        env="SCORESTREAM_STACK_PORT",
        default=d.port,
        type=opt.positive_int,
        help="first broker port on 127.0.0.1 (controllers use port+100)",
    )
    opt.add(
        p,
        "--brokers",
        env="SCORESTREAM_STACK_BROKERS",
        default=d.brokers,
        type=opt.positive_int,
        help="number of KRaft nodes (3 for a cluster that survives losing one)",
    )
    opt.add(
        p,
        "--start-timeout",
        env="SCORESTREAM_STACK_TIMEOUT",
        default=d.start_timeout_s,
        type=opt.non_negative_float,
        help="seconds to wait for the broker to answer",
    )


def stack_settings(args: argparse.Namespace) -> StackSettings:
    return StackSettings(
        state_dir=Path(args.state_dir),
        port=args.port,
        brokers=args.brokers,
        start_timeout_s=args.start_timeout,
    )


def stack(args: argparse.Namespace) -> LocalKafka:
    return LocalKafka(stack_settings(args))
