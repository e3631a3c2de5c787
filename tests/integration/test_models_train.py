"""Training on a user CSV: the happy path, stored evaluation and profile, and each bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scorestream.cli import main
from scorestream.models.registry import Registry
from scorestream.monitoring.reference import ReferenceProfile

SPEC = """
label = "churned"
event_id = "customer_id"
numeric = ["age", {name = "income", min = 0}]
categorical = ["plan", "region"]
"""


def churn_frame(n: int, seed: int) -> pd.DataFrame:
    """A user's own data: other column names than ours, missing incomes, two categoricals."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    income = np.round(rng.lognormal(10, 0.5, n), 2)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1])
    region = rng.choice(["north", "south", "east", "west"], n)
    logit = -1.5 + 0.04 * (age - 40) - 1.0 * (plan == "pro") + 0.7 * (region == "south")
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "age": age,
            "income": income,
            "plan": plan,
            "region": region,
            "churned": churned,
        }
    )
    frame.loc[rng.random(n) < 0.05, "income"] = np.nan
    return frame


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("userdata")
    churn_frame(3000, seed=5).to_csv(folder / "churn.csv", index=False)
    (folder / "churn.toml").write_text(SPEC)
    return folder


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_on_a_user_csv_stores_metrics_and_a_monitoring_profile(
    spark: object, user_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "reg"
    code, out, err = run(
        [
            "train",
            "--data",
            str(user_csv / "churn.csv"),
            "--spec",
            str(user_csv / "churn.toml"),
            "--registry",
            str(registry),
            "--max-iter",
            "50",
        ],
        capsys,
    )
    assert code == 0, err
    assert out.startswith("v1 ")
    assert "ROC AUC" in out and "calibration" in out
    assert "fitting logistic on" in err  # progress for the long steps
    entry = Registry(registry).get(Registry(registry).resolve("champion"))
    meta = entry.metadata
    assert meta["training"]["fingerprint"].startswith("sha256:")
    assert meta["feature_spec"]["categorical"] == ["plan", "region"]
    metrics = meta["metrics"]
    assert 0.6 < metrics["roc_auc"] <= 1.0
    assert 0 < metrics["brier"] < 0.25 and metrics["log_loss"] > 0
    assert sum(row["n"] for row in metrics["calibration"]) == metrics["rows"]
    # the profile is the monitoring contract: it must load there unchanged
    profile = ReferenceProfile.from_dict(entry.profile())
    assert set(profile.numeric) == {"age", "income"}
    assert profile.categorical["plan"].categories[0] == "basic"
    assert len(profile.categorical["plan"].counts) == 4  # 3 plans + unseen
    assert 0.02 < profile.numeric["income"].missing_rate < 0.08
    assert int(profile.score.counts.sum()) == profile.rows


def test_flags_instead_of_a_spec_file_and_a_tree_estimator(
    spark: object, user_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(
        [
            "train",
            "--data",
            str(user_csv / "churn.csv"),
            "--label",
            "churned",
            "--numeric",
            "age,income",
            "--categorical",
            "plan,region",
            "--estimator",
            "gbt",
            "--max-iter",
            "5",
            "--max-depth",
            "3",
            "--registry",
            str(tmp_path / "reg"),
            "--no-promote",
        ],
        capsys,
    )
    assert code == 0, err
    reg = Registry(tmp_path / "reg")
    assert reg.alias("champion") is None
    assert reg.get(1).metadata["estimator"] == {
        "kind": "gbt",
        "max_iter": 5,
        "max_depth": 3,
        "step_size": 0.1,
        "seed": 42,
    }


BAD_CASES = {
    "label_not_binary": (
        lambda f: f.assign(churned=f["churned"].where(f.index % 7 != 0, 2)),
        "label column 'churned' is not binary: it holds '2'",
    ),
    "feature_missing": (
        lambda f: f.drop(columns=["plan"]),
        "the declared feature column 'plan' is missing",
    ),
    "numeric_not_numeric": (
        lambda f: f.assign(age=f["age"].astype(str).where(f.index != 3, "forty")),
        "numeric feature 'age' holds 1 value(s) that are not numbers, e.g. ['forty']",
    ),
    "empty_file": (lambda f: f.iloc[0:0], "is empty: expected a header and at least one row"),
    "label_missing": (
        lambda f: f.drop(columns=["churned"]),
        "the declared label column 'churned' is missing",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_the_column_and_exits_2(
    spark: object,
    case: str,
    tmp_path: Path,
    user_csv: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    change, expected = BAD_CASES[case]
    bad = change(churn_frame(200, seed=1))
    path = tmp_path / f"{case}.csv"
    bad.to_csv(path, index=False)
    code, _, err = run(
        [
            "train",
            "--data",
            str(path),
            "--spec",
            str(user_csv / "churn.toml"),
            "--registry",
            str(tmp_path / "reg"),
        ],
        capsys,
    )
    assert code == 2
    assert f"error: {path}: " in err or f"error: data file {path}" in err, err
    assert expected in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "reg" / "versions").exists()  # nothing published


def test_a_zero_byte_file_is_empty_too(
    spark: object, tmp_path: Path, user_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nothing.csv"
    path.write_bytes(b"")
    code, _, err = run(
        ["train", "--data", str(path), "--spec", str(user_csv / "churn.toml"), "--registry", "x"],
        capsys,
    )
    assert code == 2
    assert f"data file {path} is empty" in err, err
