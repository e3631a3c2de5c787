"""The session builder's master rule, --conf parsing and the Spark flags (no JVM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorestream.cli import build_parser
from scorestream.errors import ConfigError
from scorestream.spark import SparkSettings, choose_master, parse_conf, preset_master


def test_local_star_only_when_nothing_else_sets_the_master(tmp_path: Path) -> None:
    assert choose_master(SparkSettings(), environ={}) == "local[*]"
    assert choose_master(SparkSettings(master="local[2]"), environ={}) == "local[2]"
    # Set elsewhere: no .master() call, so spark-submit's (or the setting's) value stands.
    for env in (
        {"MASTER": "spark://m:7077"},
        {"PYSPARK_SUBMIT_ARGS": "--master spark://m:7077 --jars a.jar pyspark-shell"},
    ):
        assert preset_master((), env) is not None
        assert choose_master(SparkSettings(), environ=env) is None
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text("# ours\nspark.master   spark://m:7077\n")
    env = {"SPARK_CONF_DIR": str(conf_dir)}
    assert preset_master((), env) == ("spark://m:7077", str(conf_dir / "spark-defaults.conf"))
    conf = (("spark.master", "yarn"),)
    assert choose_master(SparkSettings(conf=conf), environ={}) is None
    assert choose_master(SparkSettings(master="yarn", conf=conf), environ={}) is None


def test_two_different_masters_are_refused_naming_both() -> None:
    settings = SparkSettings(master="local[2]", conf=(("spark.master", "spark://m:7077"),))
    with pytest.raises(ConfigError, match=r"--master local\[2\] disagrees with --conf spark"):
        choose_master(settings, environ={})
    with pytest.raises(ConfigError, match=r"disagrees with the MASTER environment variable"):
        choose_master(SparkSettings(master="local[2]"), environ={"MASTER": "yarn"})


def test_conf_pairs_and_bad_ones() -> None:
    assert parse_conf(["spark.ui.port=4050", "spark.executor.extraJavaOptions=-Da=b=c"]) == (
        ("spark.ui.port", "4050"),
        ("spark.executor.extraJavaOptions", "-Da=b=c"),
    )
    for bad in ("spark.ui.port", "=4050", "ui.port=1"):
        with pytest.raises(ConfigError, match=r"expected spark\.<setting>=<value>"):
            parse_conf([bad])
    with pytest.raises(ConfigError, match="expected one of fetch, provided"):
        SparkSettings(connectors="maven")


def test_spark_flags_on_every_spark_command() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["score", "--conf", "spark.ui.port=4050", "--conf", "spark.cores.max=4", "--spark-ui"]
    )
    assert args.spark_conf == ["spark.ui.port=4050", "spark.cores.max=4"]
    assert args.spark_ui is True and args.master is None and args.connector_jars == "fetch"
    args = parser.parse_args(["train", "--connector-jars", "provided", "--spark-ui", "false"])
    assert args.connector_jars == "provided" and args.spark_ui is False
    with pytest.raises(SystemExit):
        parser.parse_args(["batch-score", "--input", "x", "--connector-jars", "maven"])
