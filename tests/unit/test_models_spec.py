"""Feature specs from TOML, YAML and flags, and the one-hot rule of the dependency-free scorer."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError
from scorestream.models.scorer import CardError, CoefficientScorer, _one_hot

TOML = """
label = "churned"
event_id = "customer_id"
numeric = ["age", {name = "income", min = 0}]
categorical = ["plan", "region"]
"""
YAML = """
label: churned
event_id: customer_id
numeric: [age, {name: income, min: 0}]
categorical: [plan, region]
"""


def test_toml_yaml_and_flags_give_the_same_spec(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(TOML)
    (tmp_path / "s.yaml").write_text(YAML)
    a = FeatureSpec.load(tmp_path / "s.toml")
    b = FeatureSpec.load(tmp_path / "s.yaml")
    assert a == b
    assert a.numeric_names == ["age", "income"]
    assert a.numeric[1].min == 0.0
    c = FeatureSpec.from_flags("churned", "age, income", "plan,region", "customer_id")
    assert c.feature_names == a.feature_names and c.label == "churned"


def test_bad_specs_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"unknown extension '.json'; expected .toml, .yaml"):
        FeatureSpec.load(tmp_path / "s.json")
    (tmp_path / "bad.yaml").write_text("label: [unclosed")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        FeatureSpec.load(tmp_path / "bad.yaml")
    (tmp_path / "nolabel.toml").write_text('numeric = ["a"]')
    with pytest.raises(ConfigError, match="lacks the key 'label'"):
        FeatureSpec.load(tmp_path / "nolabel.toml")
    with pytest.raises(ConfigError, match="a label column is required"):
        FeatureSpec.from_flags("", "a", "")
    with pytest.raises(ConfigError, match="declares no features"):
        FeatureSpec.from_flags("y", "", "")
    with pytest.raises(ConfigError, match="'a' is declared twice"):
        FeatureSpec.from_flags("y", "a", "a")


def test_one_hot_follows_spark_rules() -> None:
    # keep + dropLast (our pipeline): 2 labels + the indexer's "__unknown" make size 3; the
    # indexer's keep index (2) has its own slot, an index beyond the sizes encodes as zeros
    assert _one_hot(1, 3, True, "keep") == [0.0, 1.0, 0.0]
    assert _one_hot(2, 3, True, "keep") == [0.0, 0.0, 1.0]
    assert _one_hot(7, 3, True, "keep") == [0.0, 0.0, 0.0]
    # error + dropLast: the last category is dropped, it encodes as all zeros
    assert _one_hot(2, 3, True, "error") == [0.0, 0.0]
    # keep without dropLast: an extra slot for invalid
    assert _one_hot(5, 3, False, "keep") == [0.0, 0.0, 0.0, 1.0]
    with pytest.raises(CardError, match=r"outside 0\.\.2"):
        _one_hot(3, 3, True, "error")


def test_scorer_refuses_foreign_cards() -> None:
    with pytest.raises(CardError, match="not a scorestream coefficients card"):
        CoefficientScorer({"format": "something-else"})
