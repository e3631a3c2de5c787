"""Exact integer counts per reference bin of a Spark DataFrame in one aggregation (no collect).

The bin of every value is a Spark expression (``models.profile.numeric_bin`` and ``category_bin``,
the rules of ``monitoring.binning``), computed once per row in a projection; the aggregation then
counts each bin. The result has the shape ``DriftWindow.add_batch`` takes, so batches merge
exactly. The score is stored under SCORE_KEY, as in every count dictionary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from monitoring.reference import SCORE_KEY, ReferenceProfile

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


@dataclass(frozen=True)
class BatchCounts:
    """Rows, counts per bin and missing count per feature (and SCORE_KEY) of one batch."""

    rows: int
    counts: dict[str, np.ndarray]
    missing: dict[str, int]


def bucket_index(column: Column, bounds: Sequence[float]) -> Column:
    """Index of the first bound >= value (len(bounds) above the last), null for null/NaN."""
    from models.profile import numeric_bin

    return numeric_bin(column, bounds)


class BinCounter:
    """Spark expressions that count a frame's rows in the bins of a reference profile.

    `columns()` gives one small integer column per feature (its bin, null when missing), to be
    selected first; `aggregates(where)` counts them, one `count_if` per bin; `read()` turns the
    values of the one result row into counts. The scorer evaluates these aggregates in its single
    per-batch aggregation next to its own counts (no second job per batch); `count()` does the
    same for a whole frame. Column names are generated (`<prefix><i>`), so feature names need
    no quoting. Each expression is a round trip to the JVM: callers on a per-batch path build
    them once (streaming/monitor.py keeps them per model version).
    """

    def __init__(
        self, profile: ReferenceProfile, score_column: str = "score", prefix: str = "__bin"
    ) -> None:
        self.profile = profile
        self.score_column = score_column
        self.prefix = prefix
        self.names = [*profile.numeric, *profile.categorical, SCORE_KEY]
        self.sizes = profile.sizes()
        self._alias = {name: f"{prefix}{i}" for i, name in enumerate(self.names)}
        self._rows = f"{prefix}rows"

    def columns(self) -> list[Column]:
        """One small integer column per feature: its bin, null when missing."""
        from pyspark.sql import functions as F

        from models.profile import category_bin, numeric_bin

        p = self.profile
        cols = [
            numeric_bin(F.col(f"`{n}`").cast("double"), r.edges).alias(self._alias[n])
            for n, r in p.numeric.items()
        ]
        cols += [
            category_bin(F.col(f"`{n}`").cast("string"), r.categories).alias(self._alias[n])
            for n, r in p.categorical.items()
        ]
        score = F.col(f"`{self.score_column}`").cast("double")
        cols.append(numeric_bin(score, p.score.edges).alias(self._alias[SCORE_KEY]))
        return cols

    def aggregates(self, where: Column | None = None) -> list[Column]:
        """Aggregates over a frame holding `columns()`, counting only rows where `where` holds
        (all rows when None): those rows, and per feature each bin and the missing values.

        A flat aggregation of about a hundred counters over the cached rows, measured faster
        than a separate job (0.4-0.5 s against 0.5-0.9 s for a count job plus a `posexplode`
        + groupBy job, at 10k and 100k rows on 2 cores).
        """
        from pyspark.sql import functions as F

        keep = F.lit(True) if where is None else where
        aggs = [F.count_if(keep).alias(self._rows)]
        for name in self.names:
            alias = self._alias[name]
            col = F.col(alias)
            aggs += [
                F.count_if(keep & (col == F.lit(b))).alias(f"{alias}_{b}")
                for b in range(self.sizes[name])
            ]
            aggs.append(F.count_if(keep & col.isNull()).alias(f"{alias}_missing"))
        return aggs

    def read(self, values: Mapping[str, Any]) -> BatchCounts:
        """Counts from the values of `aggregates()`, by alias."""
        counts: dict[str, np.ndarray] = {}
        missing: dict[str, int] = {}
        for name in self.names:
            alias = self._alias[name]
            counts[name] = np.array(
                [int(values[f"{alias}_{b}"] or 0) for b in range(self.sizes[name])],
                dtype=np.int64,
            )
            missing[name] = int(values[f"{alias}_missing"] or 0)
        return BatchCounts(int(values[self._rows] or 0), counts, missing)

    def count(self, frame: DataFrame) -> BatchCounts:
        """Counts of a whole frame in one Spark job."""
        row = frame.select(*self.columns()).agg(*self.aggregates()).first()
        assert row is not None  # a global aggregation always returns one row
        return self.read(row.asDict())
