"""A dependency-free scorer for a coefficients card: the standard library only, no Spark.

Copy this file and the card anywhere Python runs::

    from scorer import CoefficientScorer
    scorer = CoefficientScorer.from_file("model-v3.json")
    scorer.score({"amount": 12.5, "merchant_category": "fuel", ...})  # -> probability of 1

It follows Spark's own arithmetic stage by stage, so its probability matches Spark's to about
1e-12: missing or NaN numerics take the imputer's surrogate, unseen or missing categories take
the indexer's "keep" slot, and the scaler multiplies by 1/std as Spark does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Record = Mapping[str, Any]


class CardError(ValueError):
    """The card is not one this scorer understands, or a record cannot be scored."""


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            pass
    msg = f"feature {name!r} must be a number, got {value!r}"
    raise CardError(msg)


class CoefficientScorer:
    """Scores records (mappings of column -> value) with the stages of a card."""

    def __init__(self, card: Mapping[str, Any]) -> None:
        if card.get("format") != "scorestream-coefficients/1":
            msg = f"not a scorestream coefficients card (format {card.get('format')!r})"
            raise CardError(msg)
        self.card = card
        self.stages: Sequence[Mapping[str, Any]] = card["stages"]
        self.version = card.get("model_version")
        self._index = [
            [{label: i for i, label in enumerate(labels)} for labels in stage["labels"]]
            if stage["type"] == "string_indexer"
            else None
            for stage in self.stages
        ]
        self._scale = [
            [1.0 / s if s != 0.0 else 0.0 for s in stage["std"]]
            if stage["type"] == "standard_scaler"
            else None
            for stage in self.stages
        ]

    @classmethod
    def from_file(cls, path: str | Path) -> CoefficientScorer:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def score(self, record: Record) -> float:
        """The probability of the positive class, as Spark's `probability[1]`."""
        return self._run(record)[1]

    def margin(self, record: Record) -> float:
        return self._run(record)[0]

    def _run(self, record: Record) -> tuple[float, float]:
        values: dict[str, Any] = dict(record)
        for i, stage in enumerate(self.stages):
            kind = stage["type"]
            if kind == "imputer":
                for src, dst, surrogate in zip(
                    stage["input_cols"], stage["output_cols"], stage["surrogates"], strict=True
                ):
                    raw = values.get(src)
                    value = surrogate if _is_missing(raw) else _number(raw, src)
                    if value == stage["missing_value"]:
                        value = surrogate
                    values[dst] = value
            elif kind == "string_indexer":
                lookups = self._index[i]
                assert lookups is not None
                for src, dst, lookup in zip(
                    stage["input_cols"], stage["output_cols"], lookups, strict=True
                ):
                    raw = values.get(src)
                    key = None if raw is None else str(raw)
                    if key is not None and key in lookup:
                        values[dst] = lookup[key]
                    elif stage["handle_invalid"] == "keep":
                        values[dst] = len(lookup)
                    else:
                        msg = f"category {raw!r} of {src!r} was not seen in training"
                        raise CardError(msg)
            elif kind == "one_hot":
                for src, dst, size in zip(
                    stage["input_cols"], stage["output_cols"], stage["category_sizes"], strict=True
                ):
                    values[dst] = _one_hot(
                        int(values[src]), size, stage["drop_last"], stage["handle_invalid"]
                    )
            elif kind == "assembler":
                vector: list[float] = []
                for src in stage["input_cols"]:
                    part = values[src]
                    if isinstance(part, list):
                        vector.extend(part)
                    else:
                        vector.append(float(part))
                values[stage["output_col"]] = vector
            elif kind == "standard_scaler":
                scale = self._scale[i]
                assert scale is not None
                vector = values[stage["input_col"]]
                if stage["with_mean"]:
                    vector = [v - m for v, m in zip(vector, stage["mean"], strict=True)]
                if stage["with_std"]:
                    vector = [v * s for v, s in zip(vector, scale, strict=True)]
                values[stage["output_col"]] = vector
            elif kind == "logistic_regression":
                features = values[stage["features_col"]]
                margin = math.fsum(
                    c * x for c, x in zip(stage["coefficients"], features, strict=True)
                )
                margin += stage["intercept"]
                return margin, _sigmoid(margin)
            else:
                msg = f"unknown stage type {kind!r} in the card"
                raise CardError(msg)
        msg = "the card has no logistic_regression stage"
        raise CardError(msg)


def _one_hot(index: int, orig_size: int, drop_last: bool, handle_invalid: str) -> list[float]:
    """Spark's OneHotEncoderModel: `orig_size` categories, an extra slot for invalid on "keep"."""
    keep = handle_invalid == "keep"
    if keep and not drop_last:
        size = orig_size + 1
    elif drop_last and not keep:
        size = orig_size - 1
    else:
        size = orig_size
    if 0 <= index < orig_size:
        slot = index
    elif keep:
        slot = orig_size
    else:
        msg = f"category index {index} is outside 0..{orig_size - 1}"
        raise CardError(msg)
    vector = [0.0] * size
    if slot < size:
        vector[slot] = 1.0
    return vector


def _sigmoid(margin: float) -> float:
    # Spark: 1 / (1 + exp(-m)) for the positive class
    return 1.0 / (1.0 + math.exp(-margin))
