"""Loading a saved Spark model and the checks that it can serve here: the Spark version it was
saved with, and the event fields its features read (the registry and the MLflow source share
them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ModelError

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel


def check_spark_version(trained_with: str, where: str) -> None:
    """A model saved by another Spark minor version may not load (or score) the same."""
    import pyspark

    if trained_with.split(".")[:2] != pyspark.__version__.split(".")[:2]:
        msg = (
            f"model {where} was trained with Spark {trained_with or 'unknown'}, "
            f"this scorer runs Spark {pyspark.__version__}: retrain or use that Spark"
        )
        raise ModelError(msg)


def load_pipeline(path: str, where: str) -> PipelineModel:
    """PipelineModel.load, its Py4J and Spark errors reported by `where`, not as a stack."""
    from pyspark.ml import PipelineModel

    try:
        return PipelineModel.load(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        msg = f"cannot load the Spark model at {where}: {first}"
        raise ModelError(msg) from exc


NUMERIC_KINDS = ("double", "float", "int", "long", "integer", "bigint", "decimal", "number")
STRING_KINDS = ("string", "enum")


def event_fields(avsc: Path) -> dict[str, str]:
    """{field: type} of an Avro record schema (.avsc); a union with null counts as its type."""
    try:
        schema = json.loads(avsc.read_text(encoding="utf-8"))
        fields = schema["fields"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"cannot read the event schema {avsc}: {exc}"
        raise ModelError(msg) from exc
    result: dict[str, str] = {}
    for field in fields:
        kind = field["type"]
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if isinstance(kind, dict):
            kind = kind.get("logicalType") or kind.get("type", "record")
        result[str(field["name"])] = str(kind)
    return result


def check_event_schema(spec: FeatureSpec, fields: Mapping[str, str], path: str) -> None:
    """Every feature of `spec` is an event field of a matching kind, else a ModelError."""
    problems = []
    for name in spec.numeric_names:
        kind = fields.get(name)
        if kind is None:
            problems.append(f"numeric feature {name!r} is not an event field")
        elif not kind.lower().startswith(NUMERIC_KINDS):
            problems.append(f"numeric feature {name!r} is {kind} in the events, expected a number")
    for name in spec.categorical:
        kind = fields.get(name)
        if kind is None:
            problems.append(f"categorical feature {name!r} is not an event field")
        elif kind.lower() not in STRING_KINDS:
            problems.append(
                f"categorical feature {name!r} is {kind} in the events, expected string"
            )
    if problems:
        msg = f"model {path} does not fit the event schema: " + "; ".join(problems)
        raise ModelError(msg)
