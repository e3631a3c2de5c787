"""Subcommands that learn from a labelled data file: `train` (a new model version) and
`mlflow-attach` (the feature spec and reference profile of a model trained elsewhere)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scorestream import options as opt
from scorestream.cli.common import Command, mlflow_arg, registry_arg, spark_args, spark_session
from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError
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


def training_data_args(p: argparse.ArgumentParser) -> None:
    """The format of the data file and its feature spec: a --spec file or the column flags."""
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


def register(command: Command) -> None:
    """Add `train` and `mlflow-attach` to the CLI."""
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
    training_data_args(p)
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
    training_data_args(p)
    mlflow_arg(p)
    spark_args(p)
