"""Tallies in real Spark against independent counts in Python and numpy, exactly.

`scorestream.tally` carries every count the scorer and the monitor export (records by reason,
latency buckets, drift bins) and the training profile's counts: each must equal a plain count.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from scorestream.contract.bins import category_bin, numeric_bin
from scorestream.errors import ScorestreamError
from scorestream.models.profile import bin_counts
from scorestream.monitoring.counting import BinCounter
from scorestream.monitoring.reference import SCORE_KEY, CategoricalReference, NumericReference
from scorestream.monitoring.reference import ReferenceProfile as Profile
from scorestream.tally import Tally, tally

N = 5_000


def test_counts_and_sums_per_key_equal_a_plain_count(spark: Any) -> None:
    from pyspark.sql import functions as F

    rng = np.random.default_rng(11)
    keys = [None if rng.random() < 0.1 else int(k) for k in rng.integers(0, 7, N)]
    values = [float(v) for v in rng.normal(3, 2, N)]
    flags = [bool(f) for f in rng.random(N) < 0.3]
    frame = spark.createDataFrame(
        list(zip(keys, values, flags, strict=True)), "k int, v double, f boolean"
    )
    got = tally(
        frame.coalesce(1),
        {
            "plain": Tally(F.col("k")),
            "summed": Tally(F.col("k"), F.col("v")),
            "flagged": Tally(F.when(F.col("f"), F.col("k") * 10)),
        },
    )
    plain = Counter(k for k in keys if k is not None)
    assert got.counts["plain"] == plain
    assert got.counts["summed"] == plain
    assert got.counts["flagged"] == Counter(
        k * 10 for k, f in zip(keys, flags, strict=True) if f and k is not None
    )
    for key in plain:
        want = sum(v for k, v in zip(keys, values, strict=True) if k == key)
        assert got.sums["summed"][key] == pytest.approx(want, rel=1e-12, abs=1e-9)
    assert got.sums["plain"] == {}
    assert got.total("plain") == N - keys.count(None)
    assert got.array("plain", 7).tolist() == [plain[k] for k in range(7)]
    with pytest.raises(ScorestreamError, match=r"tally 'flagged': keys \[10, 20"):
        got.array("flagged", 7)


def _profile() -> Profile:
    return Profile(
        numeric={
            "amount": NumericReference((1.0, 2.5, 10.0), np.zeros(4, dtype=np.int64), 0.0),
        },
        categorical={
            "channel": CategoricalReference(("web", "app"), np.zeros(3, dtype=np.int64), 0.0),
        },
        score=NumericReference((0.25, 0.5, 0.75), np.zeros(4, dtype=np.int64), 0.0),
        rows=0,
    )


def _rows(rng: np.random.Generator) -> tuple[list[tuple[Any, ...]], dict[str, list[Any]]]:
    """Amounts with edges hit exactly, nulls and NaN; channels with unseen values and nulls."""
    amounts: list[float | None] = []
    for a in rng.choice([0.5, 1.0, 2.5, 7.0, 10.0, 40.0, -1.0], N):
        draw = rng.random()
        amounts.append(None if draw < 0.05 else float("nan") if draw < 0.1 else float(a))
    channels = [
        None if c == "-" else str(c) for c in rng.choice(["web", "app", "pos", "kiosk", "-"], N)
    ]
    scores = [float(s) for s in rng.random(N)]
    rows = list(zip(amounts, channels, scores, strict=True))
    return rows, {"amount": amounts, "channel": channels, "score": scores}


def test_bin_counter_equals_the_numpy_reference(spark: Any) -> None:
    profile = _profile()
    rows, columns = _rows(np.random.default_rng(5))
    frame = spark.createDataFrame(rows, "amount double, channel string, score double")
    got = BinCounter(profile).count(frame)
    amounts = np.array([np.nan if a is None else a for a in columns["amount"]])
    want_rows, want_counts, want_missing = profile.count_batch(
        {"amount": amounts, "channel": columns["channel"]}, columns["score"]
    )
    assert got.rows == want_rows == N
    for name in ("amount", "channel", SCORE_KEY):
        assert got.counts[name].tolist() == want_counts[name].tolist(), name
        assert got.missing[name] == want_missing[name], name
    assert got.missing["amount"] > 0 and got.missing["channel"] > 0
    assert got.counts["channel"][2] > 0  # the unseen bucket


def test_training_profile_counts_equal_the_numpy_reference(spark: Any) -> None:
    from pyspark.sql import functions as F

    profile = _profile()
    rows, columns = _rows(np.random.default_rng(6))
    frame = spark.createDataFrame(rows, "amount double, channel string, score double")
    amount, channel = profile.numeric["amount"], profile.categorical["channel"]
    score = profile.score
    got_rows, got_counts, got_missing = bin_counts(
        frame,
        {
            "amount": (numeric_bin(F.col("amount"), amount.edges), len(amount.counts)),
            "channel": (category_bin(F.col("channel"), channel.categories), len(channel.counts)),
            SCORE_KEY: (numeric_bin(F.col("score"), score.edges), len(score.counts)),
        },
    )
    amounts = np.array([np.nan if a is None else a for a in columns["amount"]])
    want_rows, want_counts, want_missing = profile.count_batch(
        {"amount": amounts, "channel": columns["channel"]}, columns["score"]
    )
    assert got_rows == want_rows == N
    assert got_counts == {k: v.tolist() for k, v in want_counts.items()}
    assert got_missing == want_missing
