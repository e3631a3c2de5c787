"""The reference profile drift is measured against: the registry's JSON contract, and a numpy build.

The format, written by ``models.profile.build_profile`` next to each model version::

    {"numeric": {name: {"edges": [k-1 inner edges], "counts": [k ints], "missing_rate": float}},
     "categorical": {name: {"categories": [...], "counts": [len(categories) + 1 ints, the last
                            for unseen values], "missing_rate": float}},
     "score": {"edges": [...], "counts": [...], "missing_rate": 0.0},
     "rows": int}

Bin rules are those of ``monitoring.binning``. In count dictionaries (windows, batches) the
score is stored under SCORE_KEY so it can never clash with a feature name.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scorestream.contract.bins import (
    MAX_CATEGORIES,
    SCORE_KEY,
    bin_index,
    category_index,
    check_edges,
    count_bins,
    is_missing,
)
from scorestream.errors import DriftError


def _counts(raw: Any, size: int) -> np.ndarray:
    arr = np.asarray(raw)
    if arr.shape != (size,) or arr.dtype.kind not in "iu" or np.any(arr < 0):
        msg = f"counts must be {size} non-negative integers, got {raw!r}"
        raise DriftError(msg)
    return arr.astype(np.int64)


def _rate(raw: Any) -> float:
    rate = float(raw)
    if not 0.0 <= rate <= 1.0:
        msg = f"missing_rate must lie in [0, 1], got {raw!r}"
        raise DriftError(msg)
    return rate


@dataclass(frozen=True)
class NumericReference:
    """Inner decile edges, training counts per bin and the training missing rate."""

    edges: tuple[float, ...]
    counts: np.ndarray
    missing_rate: float

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> NumericReference:
        try:
            edges = tuple(float(e) for e in check_edges(raw["edges"]))
            counts = _counts(raw["counts"], len(edges) + 1)
            return cls(edges, counts, _rate(raw.get("missing_rate", 0.0)))
        except (KeyError, TypeError, ValueError, DriftError) as exc:
            msg = f"{where}: not a numeric reference: {exc}"
            raise DriftError(msg) from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "counts": self.counts.tolist(),
            "missing_rate": self.missing_rate,
        }


@dataclass(frozen=True)
class CategoricalReference:
    """Training categories, counts per category plus the unseen bucket, training missing rate."""

    categories: tuple[str, ...]
    counts: np.ndarray
    missing_rate: float

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> CategoricalReference:
        try:
            categories = tuple(str(c) for c in raw["categories"])
            if len(set(categories)) != len(categories):
                msg = f"categories must be distinct, got {list(categories)!r}"
                raise DriftError(msg)
            counts = _counts(raw["counts"], len(categories) + 1)
            return cls(categories, counts, _rate(raw.get("missing_rate", 0.0)))
        except (KeyError, TypeError, ValueError, DriftError) as exc:
            msg = f"{where}: not a categorical reference: {exc}"
            raise DriftError(msg) from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "missing_rate": self.missing_rate,
        }


@dataclass(frozen=True)
class ReferenceProfile:
    """A model version's reference distributions of features and score."""

    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    score: NumericReference
    rows: int

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ReferenceProfile:
        """Read the registry's profile format (module doc); DriftError names what is wrong."""
        if not isinstance(raw, Mapping) or "score" not in raw or "rows" not in raw:
            msg = "a reference profile needs 'numeric', 'categorical', 'score' and 'rows' keys"
            raise DriftError(msg)
        numeric = {
            str(n): NumericReference.from_dict(v, f"numeric feature {n!r}")
            for n, v in raw.get("numeric", {}).items()
        }
        categorical = {
            str(n): CategoricalReference.from_dict(v, f"categorical feature {n!r}")
            for n, v in raw.get("categorical", {}).items()
        }
        names = set(numeric) | set(categorical)
        clash = (set(numeric) & set(categorical)) | ({SCORE_KEY} & names)
        if clash:
            msg = f"feature names must be unique and not {SCORE_KEY!r}, got {sorted(clash)!r}"
            raise DriftError(msg)
        return cls(
            numeric,
            categorical,
            NumericReference.from_dict(raw["score"], "score"),
            int(raw["rows"]),
        )

    @classmethod
    def from_json(cls, path: str | Path) -> ReferenceProfile:
        """Load a profile.json as written by the model registry."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": {n: r.to_dict() for n, r in self.numeric.items()},
            "categorical": {n: r.to_dict() for n, r in self.categorical.items()},
            "score": self.score.to_dict(),
            "rows": self.rows,
        }

    def sizes(self) -> dict[str, int]:
        """Bins per feature (and SCORE_KEY): the shape every window and batch count must have."""
        sizes = {n: len(r.counts) for n, r in self.numeric.items()}
        sizes.update({n: len(r.counts) for n, r in self.categorical.items()})
        sizes[SCORE_KEY] = len(self.score.counts)
        return sizes

    def count_batch(
        self,
        columns: Mapping[str, npt.ArrayLike],
        score: npt.ArrayLike,
    ) -> tuple[int, dict[str, np.ndarray], dict[str, int]]:
        """Rows, counts per bin and missing counts of a batch, ready for DriftWindow.add_batch."""
        score_arr = np.asarray(score, dtype=np.float64)
        binned = {
            n: (bin_index(columns[n], r.edges), len(r.counts)) for n, r in self.numeric.items()
        }
        binned.update(
            {
                n: (
                    category_index(np.asarray(columns[n], dtype=object), r.categories),
                    len(r.counts),
                )
                for n, r in self.categorical.items()
            }
        )
        binned[SCORE_KEY] = (bin_index(score_arr, self.score.edges), len(self.score.counts))
        counts: dict[str, np.ndarray] = {}
        missing: dict[str, int] = {}
        for name, (index, size) in binned.items():
            if index.shape != score_arr.shape:
                msg = f"column {name!r} has {index.size} rows, the score has {score_arr.size}"
                raise DriftError(msg)
            counts[name], missing[name] = count_bins(index, size)
        return int(score_arr.size), counts, missing


def _deciles(values: np.ndarray, bins: int) -> tuple[float, ...]:
    clean = values[~np.isnan(values)]
    if clean.size == 0:
        return ()
    # inverted_cdf picks data values, as Spark's approxQuantile does (no interpolated edges)
    quantiles = np.quantile(clean, [i / bins for i in range(1, bins)], method="inverted_cdf")
    return tuple(float(e) for e in np.unique(quantiles))


def _categories(values: np.ndarray) -> tuple[str, ...]:
    freq = Counter(str(v) for v in values if not is_missing(v))
    # most frequent first, ties by name: the order models.profile uses
    ranked = sorted(freq.items(), key=lambda item: (-item[1], item[0]))
    return tuple(name for name, _ in ranked[:MAX_CATEGORIES])


def _empty(size: int) -> np.ndarray:
    return np.zeros(size, dtype=np.int64)


def build_profile_numpy(
    columns: Mapping[str, npt.ArrayLike],
    numeric: Sequence[str],
    categorical: Sequence[str],
    score: npt.ArrayLike,
    bins: int = 10,
) -> ReferenceProfile:
    """The profile of training arrays: the reference implementation of the Spark build.

    Edges are the np.quantile deciles (for bins=10) of the non-missing values, deduplicated, so a
    feature with few distinct values gets fewer bins; Spark uses approxQuantile instead.
    """
    if bins < 1:
        msg = f"bins must be at least 1, got {bins}"
        raise DriftError(msg)
    score_arr = np.asarray(score, dtype=np.float64)
    arrays = {n: np.asarray(columns[n], dtype=np.float64) for n in numeric}
    arrays.update({c: np.asarray(columns[c], dtype=object) for c in categorical})
    edges = {n: _deciles(arrays[n], bins) for n in numeric}
    cats = {c: _categories(arrays[c]) for c in categorical}
    score_edges = _deciles(score_arr, bins)
    # the shape alone (edges, categories, number of bins) is what count_batch reads
    shape = ReferenceProfile(
        numeric={n: NumericReference(e, _empty(len(e) + 1), 0.0) for n, e in edges.items()},
        categorical={c: CategoricalReference(k, _empty(len(k) + 1), 0.0) for c, k in cats.items()},
        score=NumericReference(score_edges, _empty(len(score_edges) + 1), 0.0),
        rows=0,
    )
    rows, counts, missing = shape.count_batch(arrays, score_arr)

    def rate(name: str) -> float:
        return missing[name] / rows if rows else 0.0

    return ReferenceProfile(
        numeric={n: NumericReference(e, counts[n], rate(n)) for n, e in edges.items()},
        categorical={c: CategoricalReference(k, counts[c], rate(c)) for c, k in cats.items()},
        score=NumericReference(score_edges, counts[SCORE_KEY], rate(SCORE_KEY)),
        rows=rows,
    )
