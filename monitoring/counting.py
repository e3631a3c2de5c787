"""Exact integer counts per reference bin of a Spark DataFrame in one aggregation (no collect).

The bin of every value is a Spark expression (``models.profile.numeric_bin`` and ``category_bin``,
the rules of ``monitoring.binning``), computed once per row in a projection; the aggregation then
counts each bin. The result has the shape ``DriftWindow.add_batch`` takes, so batches merge
exactly. The score is stored under SCORE_KEY, as in every count dictionary.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    selected first; `aggregates()` counts them; `read()` turns the one result row into counts.
    Column names are generated (`<prefix><i>`), so feature names need no quoting.
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

    def aggregates(self) -> list[Column]:
        from pyspark.sql import functions as F

        aggs = [F.count(F.lit(1)).alias(self._rows)]
        for name in self.names:
            col = F.col(self._alias[name])
            aggs.append(F.count(F.when(col.isNull(), 1)).alias(f"{self._alias[name]}_m"))
            aggs.extend(
                F.count(F.when(col == i, 1)).alias(f"{self._alias[name]}_{i}")
                for i in range(self.sizes[name])
            )
        return aggs

    def read(self, row: Any) -> BatchCounts:
        counts = {
            name: np.array(
                [int(row[f"{self._alias[name]}_{i}"]) for i in range(self.sizes[name])],
                dtype=np.int64,
            )
            for name in self.names
        }
        missing = {name: int(row[f"{self._alias[name]}_m"]) for name in self.names}
        return BatchCounts(int(row[self._rows]), counts, missing)

    def count(self, frame: DataFrame) -> BatchCounts:
        """Counts of a whole frame in one Spark job."""
        row = frame.select(*self.columns()).agg(*self.aggregates()).first()
        assert row is not None  # a global aggregation always returns one row
        return self.read(row)
