"""Exact integer counts per reference bin of a Spark DataFrame in one job (no rows collected).

The bin of every value is a Spark expression (``models.profile.numeric_bin`` and ``category_bin``,
the rules of ``monitoring.binning``), computed once per row in a projection; a tally
(``scorestream.tally``) then counts the rows per bin. The result has the shape
``DriftWindow.add_batch`` takes, so batches merge exactly. The score is stored under SCORE_KEY,
as in every count dictionary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scorestream.monitoring.reference import SCORE_KEY, ReferenceProfile
from scorestream.tally import Tallied, Tally, tally

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
    from scorestream.contract.bins import numeric_bin

    return numeric_bin(column, bounds)


class BinCounter:
    """Spark expressions that count a frame's rows in the bins of a reference profile.

    `columns()` gives one small integer column per feature (its bin, null when missing), to be
    selected first; `tallies(where)` counts them per bin; `read()` turns what `tally` found into
    counts. The scorer evaluates these tallies in its single per-batch job next to its own
    counts (no second job per batch); `count()` does the same for a whole frame. Column names
    are generated (`<prefix><i>`), so feature names need no quoting. Each expression is a round
    trip to the JVM: callers on a per-batch path build them once (streaming/monitor.py keeps
    them per model version).
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

    def columns(self) -> list[Column]:
        """One small integer column per feature: its bin, null when missing."""
        from pyspark.sql import functions as F

        from scorestream.contract.bins import category_bin, numeric_bin

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

    def tallies(self, where: Column | None = None) -> dict[str, Tally]:
        """One tally of bins per feature (and the score) over a frame holding `columns()`,
        counting only rows where `where` holds (all rows when None)."""
        from pyspark.sql import functions as F

        return {
            alias: Tally.bins(F.col(alias), self.sizes[name], where)
            for name, alias in self._alias.items()
        }

    def read(self, tallied: Tallied) -> BatchCounts:
        """Counts from what `tally` found for `tallies()`."""
        counts: dict[str, np.ndarray] = {}
        missing: dict[str, int] = {}
        for name, alias in self._alias.items():
            counts[name], missing[name] = tallied.bins(alias, self.sizes[name])
        # Every counted row has one key per feature: any feature's total is the row count.
        return BatchCounts(tallied.total(self._alias[self.names[0]]), counts, missing)

    def count(self, frame: DataFrame) -> BatchCounts:
        """Counts of a whole frame in one Spark job."""
        return self.read(tally(frame.select(*self.columns()), self.tallies()))
