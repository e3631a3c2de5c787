"""Subcommands of the offline side: `train` and `models list|show|promote|rollback`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scorestream import options as opt
from scorestream.cli_common import Command, registry_arg, spark_args, spark_session
from scorestream.errors import ScorestreamError


def cmd_train(args: argparse.Namespace) -> int:
    from models.pipeline import EstimatorSettings
    from models.train import TrainSettings, synthetic_frame, train
    from producers.generator import SPEC

    spark = spark_session(args, "scorestream-train")
    estimator = EstimatorSettings(
        kind=args.estimator,
        reg_param=args.reg_param,
        max_iter=args.max_iter,
        num_trees=args.num_trees,
        max_depth=args.max_depth,
        seed=args.seed,
    )
    settings = TrainSettings(
        registry=Path(args.registry),
        estimator=estimator,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        promote=not args.no_promote,
    )
    frame = synthetic_frame(spark, args.rows, args.seed)
    entry = train(
        spark,
        frame,
        SPEC,
        settings,
        fingerprint=f"synthetic:rows={args.rows}:seed={args.seed}",
        source="synthetic",
    )
    print(f"v{entry.version}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from models.registry import Registry

    reg = Registry(args.registry)
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
    p = command("train", cmd_train, "train a model on synthetic history and publish it")
    registry_arg(p)
    spark_args(p)
    opt.add(
        p,
        "--rows",
        env="SCORESTREAM_TRAIN_ROWS",
        default=50_000,
        type=opt.positive_int,
        help="synthetic training rows",
    )
    opt.add(p, "--seed", env="SCORESTREAM_SEED", default=42, type=int, help="random seed")
    opt.add(
        p,
        "--estimator",
        env="SCORESTREAM_ESTIMATOR",
        default="logistic",
        help="logistic, random_forest or gbt",
    )
    opt.add(
        p,
        "--reg-param",
        env="SCORESTREAM_REG_PARAM",
        default=0.01,
        type=float,
        help="logistic regression regularisation",
    )
    opt.add(
        p,
        "--max-iter",
        env="SCORESTREAM_MAX_ITER",
        default=100,
        type=opt.positive_int,
        help="iterations (logistic, gbt)",
    )
    opt.add(
        p,
        "--num-trees",
        env="SCORESTREAM_NUM_TREES",
        default=50,
        type=opt.positive_int,
        help="trees (random_forest)",
    )
    opt.add(
        p,
        "--max-depth",
        env="SCORESTREAM_MAX_DEPTH",
        default=5,
        type=opt.positive_int,
        help="tree depth (random_forest, gbt)",
    )
    opt.add(
        p,
        "--validation-fraction",
        env="SCORESTREAM_VALIDATION_FRACTION",
        default=0.2,
        type=float,
        help="share of rows held out for evaluation",
    )
    p.add_argument(
        "--no-promote",
        action="store_true",
        help="publish without pointing champion at the new version [env: none, default: false]",
    )

    p = command("models", cmd_models, "list, show, promote or roll back model versions")
    p.add_argument("action", choices=["list", "show", "promote", "rollback"])
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
    registry_arg(p)
