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

    Two forms over the same per-feature bin columns (`columns()`):
    - `aggregates()`: one `count_if` per bin, evaluated by the scorer in its single per-batch
      aggregation next to its own counts (no second job per batch);
    - `count()`: each row becomes one (position, bin) pair per feature (bin -1 when missing)
      through `posexplode`, and a `groupBy(position, bin).count()` gives all counts in one job
      whose result has at most sum(bins) rows (drift reports over a whole file).
    The expressions are built once per profile, not per batch (each one is a round trip to the
    JVM). Column names are generated (`<prefix><i>`), so feature names need no quoting.
    """

    POS, BIN, N = "__pos", "__bin", "__n"

    def __init__(
        self, profile: ReferenceProfile, score_column: str = "score", prefix: str = "__bin"
    ) -> None:
        self.profile = profile
        self.score_column = score_column
        self.prefix = prefix
        self.names = [*profile.numeric, *profile.categorical, SCORE_KEY]
        self.sizes = profile.sizes()
        self._alias = {name: f"{prefix}{i}" for i, name in enumerate(self.names)}
        self._columns: list[Column] | None = None
        self._bins: list[Column] | None = None
        self._aggregates: list[Column] | None = None

    def columns(self) -> list[Column]:
        """One small integer column per feature: its bin, null when missing."""
        if self._columns is None:
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
            self._columns = cols
        return self._columns

    def bins(self) -> list[Column]:
        """The bin columns (after `columns()` was selected) with -1 for missing."""
        if self._bins is None:
            from pyspark.sql import functions as F

            self._bins = [F.coalesce(F.col(self._alias[n]), F.lit(-1)) for n in self.names]
        return self._bins

    def read(self, groups: dict[tuple[int, int], int], first: int = 0) -> BatchCounts:
        """Counts from {(position, bin): n}; this counter's features start at `first`."""
        counts: dict[str, np.ndarray] = {}
        missing: dict[str, int] = {}
        for i, name in enumerate(self.names):
            pos = first + i
            per_bin = np.zeros(self.sizes[name], dtype=np.int64)
            for b in range(self.sizes[name]):
                per_bin[b] = groups.get((pos, b), 0)
            counts[name] = per_bin
            missing[name] = groups.get((pos, -1), 0)
        rows = sum(n for (pos, _b), n in groups.items() if pos == first)
        return BatchCounts(rows, counts, missing)

    def aggregates(self, where: Column) -> list[Column]:
        """Aggregates over a frame holding `columns()`, counting only rows where `where` holds:
        those rows, and per feature each bin and the missing values (`read_values` reads them).

        The scorer evaluates them in its one per-batch aggregation, next to its own counts: a
        flat aggregation of about a hundred counters over the cached rows, measured faster than
        a second job (0.4-0.5 s against 0.5-0.9 s for the count and the `posexplode` job at 10k
        and 100k rows on 2 cores). Built once per counter; `where` must be the same every call.
        """
        if self._aggregates is None:
            from pyspark.sql import functions as F

            aggs = [F.count_if(where).alias(f"{self.prefix}rows")]
            for name in self.names:
                alias = self._alias[name]
                col = F.col(alias)
                aggs += [
                    F.count_if(where & (col == F.lit(b))).alias(f"{alias}_{b}")
                    for b in range(self.sizes[name])
                ]
                aggs.append(F.count_if(where & col.isNull()).alias(f"{alias}_missing"))
            self._aggregates = aggs
        return self._aggregates

    def read_values(self, values: Mapping[str, Any]) -> BatchCounts:
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
        return BatchCounts(int(values[f"{self.prefix}rows"] or 0), counts, missing)

    def count(self, frame: DataFrame) -> BatchCounts:
        """Counts of a whole frame in one Spark job."""
        counts, _sums = group_counts_and_sums(frame.select(*self.columns()), self.bins(), None)
        return self.read(counts)


def group_counts_and_sums(
    frame: DataFrame, bins: Sequence[Column], total: Column | None
) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], float]]:
    """{(position, bin): rows} and {(position, bin): sum of `total`} in one Spark job."""
    from pyspark.sql import functions as F

    pos, b, n = BinCounter.POS, BinCounter.BIN, BinCounter.N
    value = (total if total is not None else F.lit(0.0)).alias("__v")
    exploded = frame.select(F.posexplode(F.array(*bins)).alias(pos, b), value)
    rows = (
        exploded.groupBy(pos, b)
        .agg(F.count(F.lit(1)).alias(n), F.sum("__v").alias("__s"))
        .collect()
    )
    counts = {(int(r[pos]), int(r[b])): int(r[n]) for r in rows}
    sums = {(int(r[pos]), int(r[b])): float(r["__s"] or 0.0) for r in rows}
    return counts, sums
