"""models:/ references pick the MLflow source; bad references and missing artifacts are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorestream.contract.synthetic import SPEC
from scorestream.errors import ConfigError, ModelError
from scorestream.models.mlflow_source import MlflowSource
from scorestream.models.registry import Registry
from scorestream.models.source import open_source, parse_mlflow_ref

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("models:/fraud@champion", ("fraud", "champion")),
        ("models:/fraud@shadow-2", ("fraud", "shadow-2")),
        ("models:/fraud/3", ("fraud", "3")),
    ],
)
def test_mlflow_references_parse(ref: str, expected: tuple[str, str]) -> None:
    assert parse_mlflow_ref(ref) == expected


@pytest.mark.parametrize("ref", ["models:/fraud", "models:/fraud/latest", "models:/@x", "models:/"])
def test_bad_mlflow_references_are_named(ref: str) -> None:
    with pytest.raises(ConfigError, match="expected models:/NAME@ALIAS") as info:
        parse_mlflow_ref(ref)
    assert repr(ref) in str(info.value)


def test_the_prefix_chooses_the_source(tmp_path: Path) -> None:
    source, ref = open_source(tmp_path, "champion")
    assert isinstance(source, Registry) and ref == "champion"
    source, ref = open_source(tmp_path, "models:/fraud@champion", "http://127.0.0.1:1")
    assert isinstance(source, MlflowSource) and source.name == "fraud" and ref == "champion"


def test_a_models_reference_without_a_tracking_uri_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--mlflow-uri or set MLFLOW_TRACKING_URI"):
        open_source(tmp_path, "models:/fraud/1", "")


def test_missing_scorestream_artifacts_name_the_files_and_the_fix(tmp_path: Path) -> None:
    source = MlflowSource("http://127.0.0.1:1", "fraud")
    folder = tmp_path / "scorestream"
    folder.mkdir()
    (folder / "feature_spec.json").write_text(json.dumps(SPEC.to_dict()))
    with pytest.raises(ModelError) as info:
        source._entry(4, folder)
    text = str(info.value)
    assert "models:/fraud/4 lacks the scorestream artifacts scorestream/profile.json" in text
    assert "feature_spec.json" not in text.split("lacks")[1].split("(")[0]
    assert "scorestream mlflow-attach models:/fraud/4 --spec SPEC.toml" in text
    (folder / "profile.json").write_text(json.dumps({"rows": 3}))
    entry = source._entry(4, folder)
    assert entry.spec == SPEC and entry.profile() == {"rows": 3}
    assert entry.path == "models:/fraud/4"
