"""Subcommand `models list|show|promote|rollback|export`: the versions and aliases of the
model registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scorestream.cli.common import Command, registry_arg, spark_args, spark_session
from scorestream.errors import ScorestreamError


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
    """Add `models` to the CLI."""
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
