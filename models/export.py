"""`scorestream models export`: a registry version as a coefficients card, PMML or ONNX."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from scorestream.errors import ConfigError
from scorestream.models.coefficients import build_card

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    from scorestream.models.registry import ModelVersion

FORMATS = {"coefficients": "json", "pmml": "pmml", "onnx": "onnx"}


def default_output(version: int, fmt: str) -> Path:
    return Path(f"model-v{version}.{FORMATS[fmt]}")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        msg = f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}"
        raise ConfigError(msg)


def export(
    spark: SparkSession | None,
    entry: ModelVersion,
    model: PipelineModel,
    fmt: str,
    output: Path | None = None,
) -> Path:
    """Write version `entry` in `fmt` to `output` (default model-v<N>.<ext>); returns the path."""
    check_format(fmt)
    target = output or default_output(entry.version, fmt)
    if fmt == "coefficients":
        card = build_card(entry, model)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(card, indent=1), encoding="utf-8")
        return target
    assert spark is not None, "pmml and onnx exports need the SparkSession"
    if fmt == "pmml":
        from scorestream.models.export_pmml import export_pmml

        return export_pmml(spark, entry, model, target)
    from scorestream.models.export_onnx import export_onnx

    return export_onnx(spark, entry, model, target)
