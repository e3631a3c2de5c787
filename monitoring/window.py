"""A sliding window of per-batch integer bin counts that merges exactly, by rows or by age.

Each scored batch contributes one count vector per feature (see ``monitoring.binning``); the
window keeps them in a deque and maintains running integer totals, so adding and evicting a
batch is exact and costs O(bins) however long the window is.

Eviction by rows (``max_rows=N``): the oldest batch is dropped while the rows left without it
are still >= N, so the window holds at least N rows once that many have arrived. Eviction by age
(``max_age_s=T``): a batch stamped ts is dropped once ts <= now - T, where now is the newest
timestamp seen (by ``add_batch`` or ``expire``). Both may be set; either one evicts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scorestream.errors import DriftError


@dataclass(frozen=True)
class WindowTotals:
    """Merged counts of the window: rows, counts per bin and missing count per feature."""

    rows: int
    batches: int
    counts: dict[str, np.ndarray]
    missing: dict[str, int]

    @property
    def missing_rate(self) -> dict[str, float]:
        """Missing values over rows per feature; NaN for an empty window."""
        return {n: (m / self.rows if self.rows else float("nan")) for n, m in self.missing.items()}


@dataclass(frozen=True)
class _Batch:
    ts: float
    rows: int
    counts: dict[str, np.ndarray]
    missing: dict[str, int]


class DriftWindow:
    """Per-feature bin counts of the last N rows or the last T seconds (module doc)."""

    def __init__(
        self,
        *,
        max_rows: int | None = None,
        max_age_s: float | None = None,
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        """sizes (bins per feature) fixes the shape; without it the first batch does."""
        if max_rows is None and max_age_s is None:
            msg = "a drift window needs max_rows or max_age_s (or both)"
            raise DriftError(msg)
        if (max_rows is not None and max_rows < 1) or (max_age_s is not None and max_age_s <= 0):
            msg = f"max_rows must be >= 1 and max_age_s > 0, got {max_rows!r} and {max_age_s!r}"
            raise DriftError(msg)
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._batches: deque[_Batch] = deque()
        self._rows = 0
        self._now = float("-inf")
        self._counts: dict[str, np.ndarray] = {}
        self._missing: dict[str, int] = {}
        if sizes is not None:
            self._set_shape(sizes)

    def _set_shape(self, sizes: Mapping[str, int]) -> None:
        self._counts = {n: np.zeros(int(k), dtype=np.int64) for n, k in sizes.items()}
        self._missing = dict.fromkeys(sizes, 0)

    @property
    def rows(self) -> int:
        """Rows currently in the window."""
        return self._rows

    def __len__(self) -> int:
        return len(self._batches)

    def _checked(
        self,
        ts: float,
        n_rows: int,
        counts: Mapping[str, npt.ArrayLike],
        missing: Mapping[str, int],
    ) -> _Batch:
        if set(counts) != set(self._counts) or not set(missing) <= set(self._counts):
            msg = (
                f"batch features {sorted(counts)!r} (missing: {sorted(missing)!r}) do not "
                f"match the window's {sorted(self._counts)!r}"
            )
            raise DriftError(msg)
        checked: dict[str, np.ndarray] = {}
        gaps: dict[str, int] = {}
        for name, total in self._counts.items():
            arr = np.asarray(counts[name])
            gaps[name] = int(missing.get(name, 0))
            if arr.shape != total.shape or arr.dtype.kind not in "iu" or np.any(arr < 0):
                msg = (
                    f"counts of {name!r} must be {total.size} non-negative integers, "
                    f"got {arr.tolist()!r}"
                )
                raise DriftError(msg)
            if int(arr.sum()) + gaps[name] != n_rows or gaps[name] < 0:
                msg = (
                    f"counts of {name!r} ({int(arr.sum())}) plus missing ({gaps[name]}) "
                    f"must equal the batch rows ({n_rows})"
                )
                raise DriftError(msg)
            checked[name] = arr.astype(np.int64, copy=True)
        return _Batch(float(ts), n_rows, checked, gaps)

    def add_batch(
        self,
        ts: float,
        n_rows: int,
        counts: Mapping[str, npt.ArrayLike],
        missing: Mapping[str, int],
    ) -> None:
        """Add one batch: per feature, bin counts plus missing must add up to n_rows."""
        if n_rows < 0:
            msg = f"n_rows must be >= 0, got {n_rows}"
            raise DriftError(msg)
        if not self._counts and not self._batches:
            self._set_shape({n: np.asarray(c).size for n, c in counts.items()})
        batch = self._checked(ts, n_rows, counts, missing)
        if n_rows:
            self._batches.append(batch)
            self._rows += n_rows
            for name, arr in batch.counts.items():
                self._counts[name] += arr
                self._missing[name] += batch.missing[name]
        self.expire(ts)

    def expire(self, now: float) -> None:
        """Apply eviction at time now (also called by add_batch), e.g. when no batch arrives."""
        self._now = max(self._now, float(now))
        while self._batches and self._evictable(self._batches[0]):
            old = self._batches.popleft()
            self._rows -= old.rows
            for name, arr in old.counts.items():
                self._counts[name] -= arr
                self._missing[name] -= old.missing[name]

    def _evictable(self, oldest: _Batch) -> bool:
        if self.max_age_s is not None and oldest.ts <= self._now - self.max_age_s:
            return True
        return self.max_rows is not None and self._rows - oldest.rows >= self.max_rows

    def totals(self) -> WindowTotals:
        """A copy of the merged counts (exact integers), rows and missing counts."""
        return WindowTotals(
            rows=self._rows,
            batches=len(self._batches),
            counts={n: c.copy() for n, c in self._counts.items()},
            missing=dict(self._missing),
        )
