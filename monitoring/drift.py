"""Drift statistics (PSI, Jensen-Shannon distance) of a live window against a reference profile.

Both compare proportions of the same bins. PSI = sum((c - r) * ln(c / r)) is infinite for an
empty bin, so before PSI every zero proportion (reference or current) is replaced by EPSILON and
the proportions are NOT renormalised afterwards: a bin empty on both sides then contributes
exactly 0, and the result does not depend on how many other bins are empty. Jensen-Shannon needs
no such patch (0 * log 0 = 0 and the mixture is positive wherever either side is), so it is
computed on the exact proportions, with log base 2, and lies in [0, 1]; it equals
``scipy.spatial.distance.jensenshannon(p, q, base=2)``.

This module also re-exports the pieces a scorer needs to keep drift: bin rules
(``monitoring.binning``), the reference profile (``monitoring.reference``) and the sliding window
(``monitoring.window``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from scorestream.contract.bins import MISSING, bin_index, category_index, count_bins
from scorestream.errors import DriftError
from scorestream.monitoring.reference import SCORE_KEY, ReferenceProfile, build_profile_numpy
from scorestream.monitoring.window import DriftWindow, WindowTotals

__all__ = [
    "EPSILON",
    "MISSING",
    "PREDICTION",
    "SCORE_KEY",
    "DriftWindow",
    "FeatureDrift",
    "ReferenceProfile",
    "WindowTotals",
    "bin_index",
    "build_profile_numpy",
    "category_index",
    "count_bins",
    "drift_report",
    "js_distance",
    "psi",
]

EPSILON = 1e-4
PREDICTION = "score"  # the feature name drift_report gives the model's score

Kind = Literal["numeric", "categorical", "prediction"]


def _proportions(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    pair = []
    for side, raw in (("reference", reference_counts), ("current", current_counts)):
        arr = np.asarray(raw, dtype=np.float64)
        total = arr.sum() if arr.ndim == 1 else 0.0
        if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0) or total <= 0:
            msg = f"{side} counts must be finite, non-negative and not all zero, got {raw!r}"
            raise DriftError(msg)
        pair.append(arr / total)
    ref, cur = pair
    if ref.shape != cur.shape:
        msg = f"reference has {ref.size} bins but current has {cur.size}"
        raise DriftError(msg)
    return ref, cur


def psi(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Population stability index of two count vectors over the same bins (module doc)."""
    ref, cur = _proportions(reference_counts, current_counts)
    ref = np.where(ref == 0, EPSILON, ref)
    cur = np.where(cur == 0, EPSILON, cur)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def js_distance(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Jensen-Shannon distance, log base 2, in [0, 1], of two count vectors over the same bins."""
    ref, cur = _proportions(reference_counts, current_counts)
    mix = (ref + cur) / 2

    def kl_to_mix(p: np.ndarray) -> float:
        nz = p > 0
        return float(np.sum(p[nz] * np.log2(p[nz] / mix[nz])))

    divergence = (kl_to_mix(ref) + kl_to_mix(cur)) / 2
    return float(np.sqrt(min(max(divergence, 0.0), 1.0)))  # clip rounding just outside [0, 1]


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature (or of the score, kind "prediction") over the current window.

    psi and js are NaN when either side has no non-missing value to compare; missing_rate is NaN
    for an empty window.
    """

    feature: str
    kind: Kind
    psi: float
    js: float
    missing_rate: float
    window_rows: int


def _compare(
    feature: str, kind: Kind, reference: np.ndarray, key: str, totals: WindowTotals
) -> FeatureDrift:
    current = totals.counts.get(key, np.zeros_like(reference))
    if current.shape != reference.shape:
        msg = (
            f"window counts of {feature!r} have {current.size} bins, "
            f"the profile has {reference.size}"
        )
        raise DriftError(msg)
    if reference.sum() > 0 and current.sum() > 0:
        value_psi, value_js = psi(reference, current), js_distance(reference, current)
    else:
        value_psi = value_js = float("nan")
    rate = totals.missing_rate.get(key, float("nan")) if totals.rows else float("nan")
    return FeatureDrift(feature, kind, value_psi, value_js, rate, totals.rows)


def drift_report(
    profile: ReferenceProfile,
    window: DriftWindow | WindowTotals,
) -> list[FeatureDrift]:
    """Drift of every profiled feature, then of the score (named PREDICTION, kind prediction)."""
    totals = window.totals() if isinstance(window, DriftWindow) else window
    report = [_compare(n, "numeric", r.counts, n, totals) for n, r in profile.numeric.items()]
    report += [
        _compare(n, "categorical", r.counts, n, totals) for n, r in profile.categorical.items()
    ]
    report.append(_compare(PREDICTION, "prediction", profile.score.counts, SCORE_KEY, totals))
    return report
