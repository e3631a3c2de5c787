"""The bin rule shared by the reference profile and the live window: numpy and Spark side by side.

Numeric: a profile stores inner edges e1 < ... < e(k-1) for k bins. Bin 0 is (-inf, e1], bin i
is (e(i), e(i+1)], bin k-1 is (e(k-1), +inf); so the index of x is the number of edges strictly
below x, ``np.searchsorted(edges, x, side="left")``, and a value equal to an edge belongs to the
bin on its left. -inf falls in bin 0 and +inf in bin k-1. Missing values (None, NaN) are in no
bin: their index is MISSING (-1) and they count toward the missing rate. Spark's version is
``numeric_bin`` below: ``CASE WHEN x IS NULL OR isnan(x) THEN NULL WHEN x <= e1 THEN 0 ... ELSE
k-1 END`` (null where numpy says MISSING). tests/integration/test_tally.py holds the two equal.

Categorical: values are compared as strings against the training categories; index i for
categories[i], len(categories) for any unseen value (the last bucket), MISSING for None/NaN.

The profile format (reference.py reads it, models/profile.py writes it) keeps the training
deciles as edges (DECILES), at most MAX_CATEGORIES categories per feature, and the score's bins
under SCORE_KEY in count dictionaries so it can never clash with a feature name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from scorestream.errors import DriftError

if TYPE_CHECKING:
    from pyspark.sql import Column

MISSING = -1
DECILES = [i / 10 for i in range(1, 10)]
MAX_CATEGORIES = 200  # rarer training categories count as unseen
SCORE_KEY = "__score__"


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


# -- the same rule as Spark columns ---------------------------------------------------------


def numeric_bin(column: Column, edges: Sequence[float]) -> Column:
    """The bin index of a numeric column (null when missing), as `bin_index`."""
    from pyspark.sql import functions as F

    missing = column.isNull() | F.isnan(column)
    expr = F.when(missing, F.lit(None).cast("int"))
    for i, edge in enumerate(edges):
        expr = expr.when(column <= F.lit(float(edge)), F.lit(i))
    return expr.otherwise(F.lit(len(edges)))


def category_bin(column: Column, categories: Sequence[str]) -> Column:
    """The index of a category in the training list, len(categories) for unseen, null if
    missing, as `category_index`."""
    from pyspark.sql import functions as F

    expr = F.when(column.isNull(), F.lit(None).cast("int"))
    for i, cat in enumerate(categories):
        expr = expr.when(column == F.lit(cat), F.lit(i))
    return expr.otherwise(F.lit(len(categories)))
