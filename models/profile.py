"""The reference profile drift monitoring compares against, computed in Spark with exact counts.

The bins follow the contract's rule (scorestream.contract.bins): training deciles as numeric
edges, the training categories plus "unseen"; missing values count toward the missing rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scorestream.contract.bins import (
    DECILES,
    MAX_CATEGORIES,
    SCORE_KEY,
    category_bin,
    numeric_bin,
)
from scorestream.contract.spec import FeatureSpec
from scorestream.tally import Tally, tally

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def bin_counts(
    frame: DataFrame, bins: dict[str, tuple[Column, int]]
) -> tuple[int, dict[str, list[int]], dict[str, int]]:
    """Exact integer counts per bin and missing counts, for many columns in one Spark job."""
    tallied = tally(frame, {name: Tally.bins(expr, size) for name, (expr, size) in bins.items()})
    counts: dict[str, list[int]] = {}
    missing: dict[str, int] = {}
    for name, (_, size) in bins.items():
        per_bin, missing[name] = tallied.bins(name, size)
        counts[name] = [int(n) for n in per_bin]
    # Every row has one key per column (its bin or missing): any column's total is the rows.
    return tallied.total(next(iter(bins))), counts, missing


def _edges(values: list[float]) -> list[float]:
    return sorted(set(float(v) for v in values))


def build_profile(frame: DataFrame, spec: FeatureSpec, score: Column) -> dict[str, Any]:
    """The reference profile of training rows (features) and of the model's scores on them."""
    from pyspark.sql import functions as F

    numeric = spec.numeric_names
    framed = frame.select(
        *[F.col(n).cast("double").alias(n) for n in numeric],
        *[F.col(c).cast("string").alias(c) for c in spec.categorical],
        score.alias(SCORE_KEY),
    )
    framed = framed.cache()
    try:
        clean = {n: framed.where(F.col(n).isNotNull() & ~F.isnan(F.col(n))) for n in numeric}
        edges = {n: _edges(clean[n].approxQuantile(n, DECILES, 1e-4)) for n in numeric}
        edges[SCORE_KEY] = _edges(framed.approxQuantile(SCORE_KEY, DECILES, 1e-4))
        categories: dict[str, list[str]] = {}
        for c in spec.categorical:
            rows = (
                framed.where(F.col(c).isNotNull())
                .groupBy(c)
                .count()
                .orderBy(F.desc("count"), F.asc(c))
                .limit(MAX_CATEGORIES)
                .collect()
            )
            categories[c] = [str(r[c]) for r in rows]
        bins: dict[str, tuple[Column, int]] = {
            n: (numeric_bin(F.col(n), edges[n]), len(edges[n]) + 1) for n in [*numeric, SCORE_KEY]
        }
        for c in spec.categorical:
            bins[c] = (category_bin(F.col(c), categories[c]), len(categories[c]) + 1)
        rows_total, counts, missing = bin_counts(framed, bins)
    finally:
        framed.unpersist()

    def rate(name):
        return missing[name] / rows_total if rows_total else 0.0

    return {
        "rows": rows_total,
        "numeric": {
            n: {"edges": edges[n], "counts": counts[n], "missing_rate": rate(n)} for n in numeric
        },
        "categorical": {
            c: {"categories": categories[c], "counts": counts[c], "missing_rate": rate(c)}
            for c in spec.categorical
        },
        "score": {
            "edges": edges[SCORE_KEY],
            "counts": counts[SCORE_KEY],
            "missing_rate": rate(SCORE_KEY),
        },
    }
