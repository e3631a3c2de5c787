"""The score record's fields and types come from schemas/score.avsc, read once."""

from __future__ import annotations

import pytest

from scorestream.avro import SCORE_SCHEMA, read_schema
from scorestream.contract.synthetic import SPEC
from scorestream.errors import ConfigError
from scorestream.models.scoring import score_types, typed_features

pytestmark = pytest.mark.unit


def test_score_types_follow_the_avro_schema() -> None:
    assert score_types() == (
        ("event_id", "string"),
        ("score", "double"),
        ("prediction", "double"),
        ("model_version", "int"),
        ("event_time", "timestamp"),
        ("scored_at", "timestamp"),
    )
    assert [name for name, _ in score_types()] == [
        f["name"] for f in read_schema(SCORE_SCHEMA)["fields"]
    ]


def test_an_unknown_on_bad_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown on_bad 'drop'; expected one of raise, null"):
        typed_features(None, SPEC, on_bad="drop")  # type: ignore[arg-type]
