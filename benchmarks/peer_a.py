"""Peer A, the "hard-coded model": a plain Python service scoring with the exported coefficients.

What many users would write instead of a Spark scorer: confluent-kafka in batches, the model's
coefficients card (`scorestream models export --format coefficients`) applied with numpy over
the whole batch, JSON scores out (the scorer's record: event_id, score, prediction,
model_version, event_time, scored_at). Records that are not JSON objects with an event id and
time go to the dead-letter topic unchanged.

    python -m benchmarks.peer_a --bootstrap ... --card model-v1.json --input-topic ... \
        --output-topic ... --dlq-topic ...
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.service import serve, service_args


class VectorScorer:
    """A coefficients card applied to a batch of records with numpy, stage by stage.

    Same arithmetic as models/scorer.py (Spark's): NaN/missing numerics take the imputer's
    surrogate, unseen or missing categories the indexer's keep slot, the scaler multiplies by
    1/std (0 for a constant column), probability = 1 / (1 + exp(-margin)).
    """

    def __init__(self, card: Mapping[str, Any]) -> None:
        if card.get("format") != "scorestream-coefficients/1":
            msg = f"not a scorestream coefficients card (format {card.get('format')!r})"
            raise ValueError(msg)
        self.version = int(card.get("model_version") or 0)
        self.stages = list(card["stages"])
        self.lookups = {
            i: [{label: k for k, label in enumerate(labels)} for labels in s["labels"]]
            for i, s in enumerate(self.stages)
            if s["type"] == "string_indexer"
        }
        self.scales = {
            i: np.array([1.0 / v if v != 0.0 else 0.0 for v in s["std"]])
            for i, s in enumerate(self.stages)
            if s["type"] == "standard_scaler"
        }
        lr = [s for s in self.stages if s["type"] == "logistic_regression"]
        if not lr:
            msg = "the card has no logistic_regression stage"
            raise ValueError(msg)
        self.threshold = float(lr[-1]["threshold"])
        self.inputs = sorted(
            {
                c
                for s in self.stages
                if s["type"] in ("imputer", "string_indexer")
                for c in s["input_cols"]
            }
        )

    def columns(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The input columns of the records (numerics as float arrays, NaN for missing)."""
        cols: dict[str, Any] = {}
        for stage in self.stages:
            if stage["type"] == "imputer":
                for name in stage["input_cols"]:
                    cols[name] = np.array([_float(r.get(name)) for r in records], dtype=np.float64)
            elif stage["type"] == "string_indexer":
                for name in stage["input_cols"]:
                    cols[name] = [r.get(name) for r in records]
        return cols

    def score(self, cols: dict[str, Any], n: int) -> np.ndarray:
        """Probabilities of the positive class for `n` rows of input columns."""
        values: dict[str, Any] = dict(cols)
        for i, stage in enumerate(self.stages):
            kind = stage["type"]
            if kind == "imputer":
                for src, dst, surrogate in zip(
                    stage["input_cols"], stage["output_cols"], stage["surrogates"], strict=True
                ):
                    x = np.asarray(values[src], dtype=np.float64)
                    bad = np.isnan(x) | (x == stage["missing_value"])
                    values[dst] = np.where(bad, surrogate, x)
            elif kind == "string_indexer":
                for src, dst, lookup in zip(
                    stage["input_cols"], stage["output_cols"], self.lookups[i], strict=True
                ):
                    keep = len(lookup)
                    raw = values[src]
                    values[dst] = np.fromiter(
                        (lookup.get(None if v is None else str(v), keep) for v in raw),
                        dtype=np.int64,
                        count=n,
                    )
            elif kind == "one_hot":
                for src, dst, size in zip(
                    stage["input_cols"], stage["output_cols"], stage["category_sizes"], strict=True
                ):
                    values[dst] = _one_hot(
                        values[src], size, stage["drop_last"], stage["handle_invalid"]
                    )
            elif kind == "assembler":
                parts = [
                    values[c] if np.ndim(values[c]) == 2 else np.asarray(values[c])[:, None]
                    for c in stage["input_cols"]
                ]
                values[stage["output_col"]] = np.hstack(parts).astype(np.float64)
            elif kind == "standard_scaler":
                x = values[stage["input_col"]]
                if stage["with_mean"]:
                    x = x - np.asarray(stage["mean"])
                if stage["with_std"]:
                    x = x * self.scales[i]
                values[stage["output_col"]] = x
            elif kind == "logistic_regression":
                x = values[stage["features_col"]]
                margin = x @ np.asarray(stage["coefficients"]) + stage["intercept"]
                return np.asarray(1.0 / (1.0 + np.exp(-margin)))
            else:
                msg = f"unknown stage type {kind!r} in the card"
                raise ValueError(msg)
        msg = "the card has no logistic_regression stage"
        raise ValueError(msg)


def _float(value: Any) -> float:
    if value is None:
        return float("nan")
    return float(value)


def _one_hot(index: np.ndarray, orig: int, drop_last: bool, handle_invalid: str) -> np.ndarray:
    keep = handle_invalid == "keep"
    size = orig + 1 if keep and not drop_last else orig - 1 if drop_last and not keep else orig
    slot = np.where((index >= 0) & (index < orig), index, orig if keep else -1)
    if not keep and (slot < 0).any():
        msg = f"category index outside 0..{orig - 1}"
        raise ValueError(msg)
    out = np.zeros((len(index), size + 1), dtype=np.float64)
    out[np.arange(len(index)), slot] = 1.0
    return out[:, :size]


def _iso_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PeerA:
    """The consume -> score -> produce transform of peer A."""

    def __init__(self, scorer: VectorScorer) -> None:
        self.scorer = scorer

    def __call__(
        self, messages: Sequence[Any]
    ) -> tuple[list[tuple[bytes | None, bytes]], list[Any]]:
        records: list[dict[str, Any]] = []
        kept: list[Any] = []
        dead: list[Any] = []
        for m in messages:
            try:
                record = json.loads(m.value())
            except (ValueError, TypeError):
                dead.append(m)
                continue
            if (
                not isinstance(record, dict)
                or "event_id" not in record
                or "event_time" not in record
            ):
                dead.append(m)
                continue
            records.append(record)
            kept.append(m)
        if not records:
            return [], dead
        try:
            scores = self.scorer.score(self.scorer.columns(records), len(records))
        except (ValueError, TypeError):
            return self._one_by_one(records, kept, dead)
        return self._encode(records, scores), dead

    def _one_by_one(
        self, records: list[dict[str, Any]], kept: list[Any], dead: list[Any]
    ) -> tuple[list[tuple[bytes | None, bytes]], list[Any]]:
        """A batch with a bad value: score record by record, dead-letter the bad ones."""
        good: list[dict[str, Any]] = []
        scores: list[float] = []
        for record, m in zip(records, kept, strict=True):
            try:
                scores.append(float(self.scorer.score(self.scorer.columns([record]), 1)[0]))
                good.append(record)
            except (ValueError, TypeError):
                dead.append(m)
        return self._encode(good, np.asarray(scores)), dead

    def _encode(
        self, records: list[dict[str, Any]], scores: np.ndarray
    ) -> list[tuple[bytes | None, bytes]]:
        now = _iso_now()
        version = self.scorer.version
        threshold = self.scorer.threshold
        out: list[tuple[bytes | None, bytes]] = []
        for record, score in zip(records, scores.tolist(), strict=True):
            event_id = json.dumps(str(record["event_id"]))
            value = (
                f'{{"event_id":{event_id},"score":{score!r},'
                f'"prediction":{1.0 if score > threshold else 0.0},"model_version":{version},'
                f'"event_time":{json.dumps(record["event_time"])},"scored_at":"{now}"}}'
            )
            out.append((str(record["event_id"]).encode(), value.encode()))
        return out


def main(argv: list[str] | None = None) -> int:
    p = service_args(
        "python -m benchmarks.peer_a", "peer A: numpy scoring with a coefficients card"
    )
    p.add_argument("--card", required=True, type=Path, help="coefficients card (JSON)")
    args = p.parse_args(argv)
    card = json.loads(args.card.read_text(encoding="utf-8"))
    return serve(args, PeerA(VectorScorer(card)))


if __name__ == "__main__":
    raise SystemExit(main())
