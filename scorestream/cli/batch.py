"""Subcommand `batch-score`: score a CSV/Parquet file with a registry or MLflow model, to
Parquet, a database table, or both."""

from __future__ import annotations

import argparse
import dataclasses

from scorestream import options as opt
from scorestream.cli.common import Command, mlflow_arg, registry_arg, spark_args, spark_session
from scorestream.models.batch import BatchSettings


def batch_settings(args: argparse.Namespace) -> BatchSettings:
    return BatchSettings(
        input=args.input,
        output=args.output,
        model=args.model,
        input_format=args.format,
        jdbc_url=args.jdbc_url,
        jdbc_table=args.jdbc_table,
        jdbc_driver=args.jdbc_driver,
        mode=args.mode,
        keep_columns=args.keep_columns,
    )


def cmd_batch_score(args: argparse.Namespace) -> int:
    from scorestream.models.batch import batch_score
    from scorestream.models.source import open_source

    settings = batch_settings(args)
    extra = [j.strip() for j in args.jars.split(",") if j.strip()] if args.jars else []
    if settings.jdbc_url and settings.driver() == "org.sqlite.JDBC":
        from scorestream.jars import ensure

        extra += [str(j) for j in sorted(ensure("sqlite-jdbc").glob("*.jar"))]
    spark = spark_session(args, "scorestream-batch-score", extra_jars=tuple(extra))
    source, ref = open_source(args.registry, args.model, args.mlflow_uri)
    result = batch_score(spark, source, dataclasses.replace(settings, model=ref))
    where = " and ".join(
        w
        for w in (
            settings.output,
            f"table {settings.jdbc_table!r}" if settings.jdbc_url else "",
        )
        if w
    )
    print(
        f"scored {result['scored']} of {result['input']} rows with "
        f"v{result['model_version']} -> {where}"
    )
    return 0


def register(command: Command) -> None:
    """Add `batch-score` to the CLI."""
    p = command("batch-score", cmd_batch_score, "score a CSV/Parquet file to Parquet or a table")
    p.add_argument(
        "--input",
        required=True,
        help="CSV or Parquet file or folder to score [env: none, default: required]",
    )
    b = BatchSettings  # each default is the settings field's, written once (it needs an input)
    opt.add(
        p,
        "--output",
        env="SCORESTREAM_BATCH_OUTPUT",
        default=b.output,
        help="Parquet output folder",
    )
    opt.add(
        p,
        "--model",
        env="SCORESTREAM_MODEL",
        default=b.model,
        help="version to score with: champion, challenger, latest or vN, or an MLflow "
        "models:/NAME@ALIAS or models:/NAME/VERSION (--mlflow-uri)",
    )
    opt.add(
        p,
        "--format",
        env="SCORESTREAM_DATA_FORMAT",
        default=b.input_format,
        help="input format csv or parquet (default: from the name)",
    )
    opt.add(
        p,
        "--jdbc-url",
        env="SCORESTREAM_JDBC_URL",
        default=b.jdbc_url,
        help="also write the scores to this database (jdbc:sqlite:/path/scores.db)",
    )
    opt.add(
        p, "--jdbc-table", env="SCORESTREAM_JDBC_TABLE", default=b.jdbc_table, help="table name"
    )
    opt.add(
        p,
        "--jdbc-driver",
        env="SCORESTREAM_JDBC_DRIVER",
        default=b.jdbc_driver,
        help="JDBC driver class (default: from the URL; sqlite's is bundled)",
    )
    opt.add(
        p,
        "--jars",
        env="SCORESTREAM_EXTRA_JARS",
        default=None,
        help="comma-separated extra jars for Spark (another database's JDBC driver)",
    )
    opt.add(
        p,
        "--mode",
        env="SCORESTREAM_WRITE_MODE",
        default=b.mode,
        help="overwrite, append or error when the output exists",
    )
    p.add_argument(
        "--keep-columns",
        action="store_true",
        help="copy every input column to the output [env: none, default: false]",
    )
    registry_arg(p)
    mlflow_arg(p)
    spark_args(p)
