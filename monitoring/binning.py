"""Bin rules shared by the reference profile and the live window (Spark mirrors them in SQL).

Numeric: a profile stores inner edges e1 < ... < e(k-1) for k bins. Bin 0 is (-inf, e1], bin i
is (e(i), e(i+1)], bin k-1 is (e(k-1), +inf); so the index of x is the number of edges strictly
below x, ``np.searchsorted(edges, x, side="left")``, and a value equal to an edge belongs to the
bin on its left. -inf falls in bin 0 and +inf in bin k-1. Missing values (None, NaN) are in no
bin: their index is MISSING (-1) and they count toward the missing rate. Spark's version is
``models.profile.numeric_bin``: ``CASE WHEN x IS NULL OR isnan(x) THEN NULL WHEN x <= e1 THEN 0
... ELSE k-1 END``.

Categorical: values are compared as strings against the training categories; index i for
categories[i], len(categories) for any unseen value (the last bucket), MISSING for None/NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from scorestream.monitoring.errors import DriftError

MISSING = -1


def check_edges(edges: Sequence[float]) -> np.ndarray:
    """Inner edges as a float array, or DriftError unless they are finite and strictly rising."""
    arr = np.asarray(edges, dtype=np.float64)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
        msg = f"bin edges must be finite and strictly increasing, got {list(edges)!r}"
        raise DriftError(msg)
    return arr


def bin_index(values: npt.ArrayLike | Sequence[float | None], edges: Sequence[float]) -> np.ndarray:
    """The bin of each value against inner edges (module doc), MISSING for None/NaN."""
    inner = check_edges(edges)
    arr = np.asarray(values, dtype=np.float64)
    index = np.searchsorted(inner, arr, side="left").astype(np.int64)
    index[np.isnan(arr)] = MISSING
    return index


def is_missing(value: object) -> bool:
    """True for None and NaN, the values that fall in no bin."""
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def category_index(values: Iterable[object], categories: Sequence[str]) -> np.ndarray:
    """The index of each value in categories (as strings), len(categories) if unseen."""
    lookup = {str(c): i for i, c in enumerate(categories)}
    if len(lookup) != len(categories):
        msg = f"categories must be distinct as strings, got {list(categories)!r}"
        raise DriftError(msg)
    unseen = len(categories)
    return np.fromiter(
        (MISSING if is_missing(v) else lookup.get(str(v), unseen) for v in values),
        dtype=np.int64,
    )


def count_bins(index: npt.ArrayLike, n_bins: int) -> tuple[np.ndarray, int]:
    """Integer counts per bin (length n_bins) and the number of MISSING entries."""
    arr = np.asarray(index, dtype=np.int64)
    present = arr[arr != MISSING]
    if present.size and (present.min() < 0 or present.max() >= n_bins):
        msg = f"bin indices must lie in [0, {n_bins}) or be {MISSING} (missing)"
        raise DriftError(msg)
    counts = np.bincount(present, minlength=n_bins).astype(np.int64)
    return counts, int(arr.size - present.size)
