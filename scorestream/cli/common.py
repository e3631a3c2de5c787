"""Arguments shared by the subcommands: Kafka connection, Spark, registry (env var defaults)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream import options as opt
from scorestream.kafka import KafkaSettings
from scorestream.paths import STATE_ROOT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from scorestream.stack import LocalKafka

Handler = Callable[[argparse.Namespace], int]
Command = Callable[[str, Handler, str], argparse.ArgumentParser]

STATE = str(STATE_ROOT)


def kafka_args(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--bootstrap",
        env="SCORESTREAM_BOOTSTRAP",
        default="127.0.0.1:9092",
        help="Kafka bootstrap servers",
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


def spark_args(p: argparse.ArgumentParser) -> None:
    opt.add(
        p, "--master", env="SCORESTREAM_SPARK_MASTER", default="local[*]", help="Spark master URL"
    )
    opt.add(
        p,
        "--driver-memory",
        env="SCORESTREAM_DRIVER_MEMORY",
        default="2g",
        help="Spark driver memory",
    )
    opt.add(
        p,
        "--driver-host",
        env="SCORESTREAM_DRIVER_HOST",
        default="127.0.0.1",
        help="address Spark executors reach the driver at (its host name on a cluster)",
    )


def spark_session(
    args: argparse.Namespace,
    app: str,
    conf: tuple[tuple[str, str], ...] = (),
    master: str | None = None,
) -> SparkSession:
    """The SparkSession of the shared --master/--driver-* flags, plus extra settings via `conf`
    (`master` overrides --master)."""
    from scorestream.spark import SparkSettings, jvm_log_level, session

    return session(
        SparkSettings(
            master=master or args.master,
            app_name=app,
            driver_memory=args.driver_memory,
            driver_host=args.driver_host,
            log_level=jvm_log_level(getattr(args, "log_level", "WARNING")),
            conf=conf,
        )
    )


def registry_arg(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--registry",
        env="SCORESTREAM_REGISTRY",
        default=f"{STATE}/registry",
        help="model registry root directory",
    )


def mlflow_arg(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--mlflow-uri",
        env="MLFLOW_TRACKING_URI",
        default="",
        help="MLflow tracking server (and model registry) of models:/NAME@ALIAS references",
    )


def stack_args(p: argparse.ArgumentParser) -> None:
    opt.add(
        p,
        "--state-dir",
        env="SCORESTREAM_STACK_DIR",
        default=f"{STATE}/stack",
        help="where the local broker keeps its data, logs and pids",
    )
    opt.add(
        p,
        "--port",
        env="SCORESTREAM_STACK_PORT",
        default=9092,
        type=opt.positive_int,
        help="first broker port on 127.0.0.1 (controllers use port+100)",
    )
    opt.add(
        p,
        "--brokers",
        env="SCORESTREAM_STACK_BROKERS",
        default=1,
        type=opt.positive_int,
        help="number of KRaft nodes (3 for a cluster that survives losing one)",
    )
    opt.add(
        p,
        "--start-timeout",
        env="SCORESTREAM_STACK_TIMEOUT",
        default=90.0,
        type=opt.non_negative_float,
        help="seconds to wait for the broker to answer",
    )


def stack(args: argparse.Namespace) -> LocalKafka:
    from scorestream.stack import LocalKafka, StackSettings

    return LocalKafka(
        StackSettings(
            state_dir=Path(args.state_dir),
            port=args.port,
            brokers=args.brokers,
            start_timeout_s=args.start_timeout,
        )
    )
