"""Subcommands of the offline side: `train` and `models list|show|promote|rollback`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from scorestream import options as opt
from scorestream.cli.common import Command, mlflow_arg, registry_arg, spark_args, spark_session
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError, ScorestreamError
from scorestream.models.batch import BatchSettings
from scorestream.models.pipeline import EstimatorSettings
from scorestream.models.train import TrainSettings


def _spec(args: argparse.Namespace) -> FeatureSpec:
    if args.spec:
        return FeatureSpec.load(Path(args.spec))
    return FeatureSpec.from_flags(
        args.label, args.numeric, args.categorical, args.event_id, args.event_time
    )


def train_settings(args: argparse.Namespace) -> TrainSettings:
    estimator = EstimatorSettings(
        kind=args.estimator,
        reg_param=args.reg_param,
        elastic_net=args.elastic_net,
        max_iter=args.max_iter,
        num_trees=args.num_trees,
        max_depth=args.max_depth,
        step_size=args.step_size,
        seed=args.seed,
    )
    if not 0.0 < args.validation_fraction < 1.0:
        msg = f"--validation-fraction {args.validation_fraction} must lie strictly between 0 and 1"
        raise ConfigError(msg)
    return TrainSettings(
        registry=args.registry,
        estimator=estimator,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        promote=not args.no_promote,
        mlflow_model=args.mlflow_model,
        mlflow_uri=args.mlflow_uri,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from scorestream.contract.synthetic import SPEC
    from scorestream.models.data import fingerprint, load_training_data
    from scorestream.models.evaluate import format_metrics
    from scorestream.models.train import synthetic_frame, train

    settings = train_settings(args)
    if args.mlflow_model:
        from scorestream.models.mlflow_source import client

        client(args.mlflow_uri)  # no tracking server, no MLflow: fail before Spark starts
    if args.data:
        spec = _spec(args)  # checked before Spark starts: a bad spec fails fast
        spark = spark_session(args, "scorestream-train")
        print(f"[train] reading {args.data} ...", file=sys.stderr, flush=True)
        frame = load_training_data(spark, args.data, spec, args.format)
        source, digest = args.data, fingerprint(args.data)
    else:
        if args.spec or args.label:
            msg = "--spec/--label describe a --data file; give --data PATH or neither"
            raise ConfigError(msg)
        spark = spark_session(args, "scorestream-train")
        spec = SPEC
        frame = synthetic_frame(spark, args.rows, args.seed)
        source, digest = "synthetic", f"synthetic:rows={args.rows}:seed={args.seed}"
    entry = train(spark, frame, spec, settings, fingerprint=digest, source=source)
    print(f"v{entry.version} ({entry.path})")
    print(format_metrics(entry.metadata["metrics"]))
    return 0


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


def cmd_mlflow_attach(args: argparse.Namespace) -> int:
    """Attach scorestream's artifacts (spec, profile) to a model logged without them."""
    import datetime as dt

    from pyspark.sql import functions as F

    from scorestream.models.data import fingerprint, load_training_data
    from scorestream.models.mlflow_log import attach
    from scorestream.models.mlflow_source import MlflowSource
    from scorestream.models.profile import build_profile
    from scorestream.models.scoring import score
    from scorestream.models.source import is_mlflow, parse_mlflow_ref

    if not is_mlflow(args.model):
        msg = f"{args.model!r} is not an MLflow model: expected models:/NAME/VERSION"
        raise ConfigError(msg)
    name, target = parse_mlflow_ref(args.model)
    spec = _spec(args)
    source = MlflowSource(args.mlflow_uri, name)
    version = source.resolve(target)
    spark = spark_session(args, "scorestream-mlflow-attach")
    saved_with, model = source.load_model(version)
    frame = load_training_data(spark, args.data, spec, args.format)
    print(f"[attach] profiling models:/{name}/{version} on {args.data} ...", file=sys.stderr)
    profile = build_profile(score(frame, model, version), spec, F.col("score"))
    metadata = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "spark_version": saved_with,
        "feature_spec": spec.to_dict(),
        "training": {"source": args.data, "fingerprint": fingerprint(args.data)},
        "attached_by": "scorestream mlflow-attach",
    }
    where = attach(source, version, spec, profile, metadata)
    print(f"models:/{name}/{version}: feature spec and reference profile -> {where}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from scorestream.models.export import check_format, export
    from scorestream.models.registry import Registry
    from scorestream.models.sqlexpr import check_dialect

    check_format(args.format)
    if args.format == "sql":
        check_dialect(args.dialect)
    extra: tuple[str, ...] = ()
    if args.format == "pmml":
        from scorestream.models.export_pmml import pmml_jars

        extra = tuple(str(j) for j in pmml_jars())
    spark = spark_session(args, "scorestream-export", extra_jars=extra)
    reg = Registry(args.registry, spark)
    version = reg.resolve(args.version)
    entry, model = reg.load(version)
    output = Path(args.output) if args.output else None
    path = export(spark, entry, model, args.format, output, args.dialect, args.table)
    shown = f"{args.format}, {args.dialect}" if args.format == "sql" else args.format
    print(f"v{entry.version} -> {path} ({shown})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from scorestream.fs import HadoopPath, location
    from scorestream.models.registry import Registry

    if args.action == "export":
        return cmd_export(args)
    # A Hadoop root is read through Spark's FileSystem API: start Spark only then.
    remote = isinstance(location(args.registry), HadoopPath)
    reg = Registry(args.registry, spark_session(args, "scorestream-models") if remote else None)
    if args.action == "list":
        aliases = {a: (reg.alias(a) or {}).get("version") for a in ("champion", "challenger")}
        versions = reg.versions()
        if not versions:
            print(f"no model versions in {reg.root}")
            return 0
        print(f"{'version':<9}{'created_at':<34}{'estimator':<15}{'roc_auc':>8}  aliases")
        for v in versions:
            try:
                meta = reg.get(v).metadata
            except ScorestreamError as exc:
                print(f"v{v:<8}(unreadable: {exc})")
                continue
            tags = ",".join(a for a, t in aliases.items() if t == v)
            auc = meta.get("metrics", {}).get("roc_auc", float("nan"))
            print(
                f"v{v:<8}{meta.get('created_at', '?'):<34}"
                f"{meta.get('estimator', {}).get('kind', '?'):<15}{auc:>8.4f}  {tags}"
            )
    elif args.action == "show":
        entry = reg.get(reg.resolve(args.version))
        print(json.dumps(entry.metadata, indent=2, sort_keys=True))
    elif args.action == "promote":
        record = reg.promote(reg.resolve(args.version), args.alias, reason=args.reason)
        print(f"{args.alias} -> v{record['version']}")
    elif args.action == "rollback":
        record = reg.rollback(args.alias)
        print(f"{args.alias} -> v{record['version']}")
    return 0


def register(command: Command) -> None:
    """Add the offline subcommands to the CLI."""
    p = command(
        "train", cmd_train, "train a model on a CSV/Parquet file (or synthetic data), publish it"
    )
    registry_arg(p)
    spark_args(p)
    # Each default is the settings field's, written once (TrainSettings needs a registry).
    e, t = EstimatorSettings(), TrainSettings
    opt.add(
        p,
        "--rows",
        env="SCORESTREAM_TRAIN_ROWS",
        default=50_000,
        type=opt.positive_int,
        help="synthetic training rows",
    )
    opt.add(p, "--seed", env="SCORESTREAM_SEED", default=t.seed, type=int, help="random seed")
    opt.add(
        p,
        "--estimator",
        env="SCORESTREAM_ESTIMATOR",
        default=e.kind,
        help="logistic, random_forest or gbt",
    )
    opt.add(
        p,
        "--reg-param",
        env="SCORESTREAM_REG_PARAM",
        default=e.reg_param,
        type=float,
        help="logistic regression regularisation",
    )
    opt.add(
        p,
        "--max-iter",
        env="SCORESTREAM_MAX_ITER",
        default=e.max_iter,
        type=opt.positive_int,
        help="iterations (logistic, gbt)",
    )
    opt.add(
        p,
        "--num-trees",
        env="SCORESTREAM_NUM_TREES",
        default=e.num_trees,
        type=opt.positive_int,
        help="trees (random_forest)",
    )
    opt.add(
        p,
        "--max-depth",
        env="SCORESTREAM_MAX_DEPTH",
        default=e.max_depth,
        type=opt.positive_int,
        help="tree depth (random_forest, gbt)",
    )
    opt.add(
        p,
        "--validation-fraction",
        env="SCORESTREAM_VALIDATION_FRACTION",
        default=t.validation_fraction,
        type=float,
        help="share of rows held out for evaluation",
    )
    opt.add(
        p,
        "--elastic-net",
        env="SCORESTREAM_ELASTIC_NET",
        default=e.elastic_net,
        type=float,
        help="logistic regression L1 share (0 = ridge, 1 = lasso)",
    )
    opt.add(
        p,
        "--step-size",
        env="SCORESTREAM_STEP_SIZE",
        default=e.step_size,
        type=float,
        help="learning rate (gbt)",
    )
    opt.add(
        p,
        "--data",
        env="SCORESTREAM_TRAIN_DATA",
        default=None,
        help="CSV or Parquet file (or folder) of labelled history; synthetic data when unset",
    )
    opt.add(
        p,
        "--format",
        env="SCORESTREAM_DATA_FORMAT",
        default=None,
        help="csv or parquet (default: from the file name)",
    )
    opt.add(
        p,
        "--spec",
        env="SCORESTREAM_FEATURE_SPEC",
        default=None,
        help="feature spec file (.toml, .yaml): label, numeric and categorical columns",
    )
    opt.add(p, "--label", env="SCORESTREAM_LABEL", default="", help="label column (no --spec)")
    opt.add(
        p,
        "--numeric",
        env="SCORESTREAM_NUMERIC",
        default="",
        help="comma-separated numeric feature columns (no --spec)",
    )
    opt.add(
        p,
        "--categorical",
        env="SCORESTREAM_CATEGORICAL",
        default="",
        help="comma-separated categorical feature columns (no --spec)",
    )
    opt.add(
        p,
        "--event-id",
        env="SCORESTREAM_EVENT_ID",
        default=FeatureSpec.event_id,
        help="event id column (no --spec)",
    )
    opt.add(
        p,
        "--event-time",
        env="SCORESTREAM_EVENT_TIME",
        default=FeatureSpec.event_time,
        help="event time column (no --spec)",
    )
    opt.add(
        p,
        "--mlflow-model",
        env="SCORESTREAM_MLFLOW_MODEL",
        default=t.mlflow_model,
        help="log the model to MLflow and register it as a version of this registered model "
        "(instead of the registry directory); champion alias unless --no-promote",
    )
    mlflow_arg(p)
    p.add_argument(
        "--no-promote",
        action="store_true",
        help="publish without pointing champion at the new version [env: none, default: false]",
    )

    p = command("models", cmd_models, "list, show, promote, roll back or export model versions")
    p.add_argument("action", choices=["list", "show", "promote", "rollback", "export"])
    p.add_argument(
        "version",
        nargs="?",
        default="champion",
        help="version for show/promote: vN, N, latest, champion, challenger",
    )
    p.add_argument(
        "--alias",
        default="champion",
        choices=["champion", "challenger"],
        help="alias to promote or roll back [env: none, default: champion]",
    )
    p.add_argument(
        "--reason",
        default="promoted by hand",
        help="why, recorded in the registry [env: none, default: promoted by hand]",
    )
    p.add_argument(
        "--format",
        default="coefficients",
        help="export: coefficients, pmml, onnx or sql [env: none, default: coefficients]",
    )
    p.add_argument(
        "--output",
        default=None,
        help="export: file to write [env: none, default: model-v<N>.<json|pmml|onnx|sql>]",
    )
    p.add_argument(
        "--dialect",
        default="postgres",
        help="export --format sql: postgres, sqlite or spark [env: none, default: postgres]",
    )
    p.add_argument(
        "--table",
        default="features",
        help="export --format sql: table the view reads [env: none, default: features]",
    )
    registry_arg(p)
    spark_args(p)

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

    p = command(
        "mlflow-attach",
        cmd_mlflow_attach,
        "add a feature spec and reference profile to a Spark model in an MLflow registry",
    )
    p.add_argument(
        "model",
        help="models:/NAME/VERSION or models:/NAME@ALIAS [env: none, default: required]",
    )
    p.add_argument(
        "--data",
        required=True,
        help="CSV or Parquet file of the model's training rows, for the reference profile "
        "[env: none, default: required]",
    )
    opt.add(
        p,
        "--format",
        env="SCORESTREAM_DATA_FORMAT",
        default=None,
        help="csv or parquet (default: from the file name)",
    )
    opt.add(
        p,
        "--spec",
        env="SCORESTREAM_FEATURE_SPEC",
        default=None,
        help="feature spec file (.toml, .yaml): label, numeric and categorical columns",
    )
    for flag, env, text in (
        ("--label", "SCORESTREAM_LABEL", "label column (no --spec)"),
        ("--numeric", "SCORESTREAM_NUMERIC", "comma-separated numeric features (no --spec)"),
        (
            "--categorical",
            "SCORESTREAM_CATEGORICAL",
            "comma-separated categorical features (no --spec)",
        ),
    ):
        opt.add(p, flag, env=env, default="", help=text)
    opt.add(
        p, "--event-id", env="SCORESTREAM_EVENT_ID", default=FeatureSpec.event_id, help="event id"
    )
    opt.add(
        p,
        "--event-time",
        env="SCORESTREAM_EVENT_TIME",
        default=FeatureSpec.event_time,
        help="event time",
    )
    mlflow_arg(p)
    spark_args(p)
