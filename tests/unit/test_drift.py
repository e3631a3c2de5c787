"""Drift statistics, bin rules, reference profiles and the sliding window."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from scorestream.errors import DriftError, ScorestreamError
from scorestream.monitoring.drift import (
    EPSILON,
    MISSING,
    PREDICTION,
    SCORE_KEY,
    DriftWindow,
    ReferenceProfile,
    bin_index,
    build_profile_numpy,
    category_index,
    count_bins,
    drift_report,
    js_distance,
    psi,
)

pytestmark = pytest.mark.unit


def _random_counts(rng: np.random.Generator, bins: int) -> tuple[np.ndarray, np.ndarray]:
    ref = rng.integers(0, 50, size=bins)
    cur = rng.integers(0, 50, size=bins)
    ref[rng.integers(bins)] = 0  # at least one empty bin on each side,
    cur[rng.integers(bins)] = 0
    shared = rng.integers(bins)  # and sometimes a bin empty on both
    if rng.random() < 0.5:
        ref[shared] = cur[shared] = 0
    if ref.sum() == 0 or cur.sum() == 0:
        ref[0] += 1
        cur[-1] += 1
    return ref, cur


def _eps_proportions(counts: np.ndarray) -> np.ndarray:
    p = counts / counts.sum()
    return np.where(p == 0, EPSILON, p)


@pytest.mark.parametrize("seed", range(25))
def test_psi_matches_direct_formula_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = _random_counts(rng, int(rng.integers(2, 15)))
    r, c = _eps_proportions(ref), _eps_proportions(cur)
    direct = float(np.sum((c - r) * np.log(c / r)))
    # PSI is the symmetrised KL divergence: KL(c || r) + KL(r || c)
    via_scipy = float(np.sum(rel_entr(c, r)) + np.sum(rel_entr(r, c)))
    assert psi(ref, cur) == pytest.approx(direct, abs=1e-9)
    assert psi(ref, cur) == pytest.approx(via_scipy, abs=1e-9)
    assert psi(ref, cur) >= 0


@pytest.mark.parametrize("seed", range(25))
def test_js_distance_matches_scipy_and_direct_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = _random_counts(rng, int(rng.integers(2, 15)))
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.nansum(np.where(p > 0, p * np.log2(p / m), 0.0))
        kl_qm = np.nansum(np.where(q > 0, q * np.log2(q / m), 0.0))
    direct = float(np.sqrt((kl_pm + kl_qm) / 2))
    got = js_distance(ref, cur)
    assert got == pytest.approx(float(jensenshannon(ref, cur, base=2)), abs=1e-9)
    assert got == pytest.approx(direct, abs=1e-9)
    assert 0.0 <= got <= 1.0


def test_identical_and_disjoint_distributions() -> None:
    assert psi([5, 0, 5], [10, 0, 10]) == 0.0
    assert js_distance([5, 0, 5], [10, 0, 10]) == 0.0
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    # disjoint: every bin is empty on one side, replaced by EPSILON, not renormalised
    assert psi([1, 0], [0, 1]) == pytest.approx(2 * (1 - EPSILON) * np.log(1 / EPSILON))


@pytest.mark.parametrize(
    ("ref", "cur"),
    [([1, 2], [1, 2, 3]), ([0, 0], [1, 1]), ([1, -1], [1, 1]), ([1, np.nan], [1, 1])],
)
def test_invalid_counts_raise_with_the_bad_value(ref: list[float], cur: list[float]) -> None:
    with pytest.raises(DriftError) as info:
        psi(ref, cur)
    assert isinstance(info.value, ScorestreamError)
    assert "bins" in str(info.value) or repr(ref) in str(info.value)
    with pytest.raises(DriftError):
        js_distance(ref, cur)


def test_bin_index_edges_belong_to_the_bin_on_their_left() -> None:
    edges = [1.0, 2.0, 3.0]  # 4 bins: (-inf,1], (1,2], (2,3], (3,inf)
    values = np.array(
        [-np.inf, -5, 1.0, np.nextafter(1.0, 2), 2.0, 2.5, 3.0, 3.0001, 1e9, np.inf, np.nan]
    )
    assert bin_index(values, edges).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3, MISSING]


def test_bin_index_none_is_missing_and_no_edges_is_one_bin() -> None:
    assert bin_index([None, 0.5, 7.0], [1.0]).tolist() == [MISSING, 0, 1]
    assert bin_index([-1.0, 1e6], []).tolist() == [0, 0]


@pytest.mark.parametrize("edges", [[2.0, 1.0], [1.0, 1.0], [0.0, np.inf], [np.nan]])
def test_bin_index_rejects_edges_that_do_not_rise(edges: list[float]) -> None:
    with pytest.raises(DriftError, match="strictly increasing"):
        bin_index([0.0], edges)


def test_category_index_unseen_last_and_missing() -> None:
    got = category_index(["b", "a", "zzz", None, float("nan"), 3], ["a", "b", "3"])
    assert got.tolist() == [1, 0, 3, MISSING, MISSING, 2]


def test_count_bins() -> None:
    counts, missing = count_bins([0, 2, 2, MISSING, 1, MISSING], 4)
    assert counts.tolist() == [1, 1, 2, 0]
    assert counts.dtype == np.int64
    assert missing == 2
    with pytest.raises(DriftError, match=r"\[0, 4\)"):
        count_bins([4], 4)


def _profile(rng: np.random.Generator, n: int = 20_000) -> tuple[ReferenceProfile, dict]:
    columns = {
        "amount": rng.lognormal(3, 1, size=n),
        "age": np.where(rng.random(n) < 0.05, np.nan, rng.normal(40, 10, size=n)),
        "channel": rng.choice(
            np.array(["web", "app", "pos"], dtype=object), size=n, p=[0.5, 0.3, 0.2]
        ),
    }
    score = rng.beta(2, 5, size=n)
    profile = build_profile_numpy(columns, ["amount", "age"], ["channel"], score)
    return profile, {"columns": columns, "score": score}


def test_build_profile_numpy_follows_the_registry_format() -> None:
    rng = np.random.default_rng(1)
    profile, _ = _profile(rng)
    raw = profile.to_dict()
    assert set(raw) == {"numeric", "categorical", "score", "rows"}
    assert raw["rows"] == 20_000
    amount = raw["numeric"]["amount"]
    assert len(amount["edges"]) == 9 and len(amount["counts"]) == 10
    assert amount["edges"] == sorted(amount["edges"])
    assert sum(amount["counts"]) == 20_000 and amount["missing_rate"] == 0.0
    assert all(abs(c - 2000) <= 1 for c in amount["counts"])  # deciles
    age = raw["numeric"]["age"]
    assert sum(age["counts"]) + round(age["missing_rate"] * 20_000) == 20_000
    assert 0.04 < age["missing_rate"] < 0.06
    channel = raw["categorical"]["channel"]
    assert channel["categories"] == ["web", "app", "pos"]  # by frequency
    assert len(channel["counts"]) == 4 and channel["counts"][-1] == 0
    assert len(raw["score"]["counts"]) == len(raw["score"]["edges"]) + 1
    # JSON round trip: the contract with the model registry
    again = ReferenceProfile.from_dict(json.loads(json.dumps(raw)))
    assert again.to_dict() == raw
    assert again.sizes() == {"amount": 10, "age": 10, "channel": 4, SCORE_KEY: 10}


def test_build_profile_dedupes_edges_of_few_distinct_values() -> None:
    values = np.array([0.0] * 80 + [1.0] * 20)
    profile = build_profile_numpy({"flag": values}, ["flag"], [], values)
    assert profile.numeric["flag"].edges == (0.0, 1.0)
    assert profile.numeric["flag"].counts.tolist() == [80, 20, 0]


def test_profile_json_file(tmp_path) -> None:
    profile, _ = _profile(np.random.default_rng(2), n=500)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile.to_dict()))
    assert ReferenceProfile.from_json(path).to_dict() == profile.to_dict()


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda p: p["numeric"]["x"].update(counts=[1, 2]), "numeric feature 'x'"),
        (lambda p: p["numeric"]["x"].update(edges=[2.0, 1.0]), "strictly increasing"),
        (lambda p: p["categorical"]["c"].update(counts=[1, 2]), "3 non-negative integers"),
        (lambda p: p["categorical"]["c"].update(missing_rate=1.5), "1.5"),
        (lambda p: p.pop("score"), "'score'"),
    ],
)
def test_profile_errors_name_the_bad_value(mutate, needle: str) -> None:
    raw = {
        "numeric": {"x": {"edges": [0.0, 1.0], "counts": [1, 2, 3], "missing_rate": 0.0}},
        "categorical": {"c": {"categories": ["a", "b"], "counts": [1, 1, 0], "missing_rate": 0.1}},
        "score": {"edges": [0.5], "counts": [3, 3], "missing_rate": 0.0},
        "rows": 6,
    }
    ReferenceProfile.from_dict(raw)
    mutate(raw)
    with pytest.raises(DriftError, match=needle.replace("[", r"\[")):
        ReferenceProfile.from_dict(raw)


def _batch(sizes: dict[str, int], rng: np.random.Generator, rows: int):
    counts = {n: rng.multinomial(rows - 1, np.ones(k) / k) for n, k in sizes.items()}
    return rows, counts, dict.fromkeys(sizes, 1)


def test_window_merges_integer_counts_exactly() -> None:
    rng = np.random.default_rng(3)
    sizes = {"a": 10, "b": 4}
    window = DriftWindow(max_rows=10**12, sizes=sizes)
    batches = [_batch(sizes, rng, int(rng.integers(1, 10**6))) for _ in range(200)]
    for i, (rows, counts, missing) in enumerate(batches):
        window.add_batch(float(i), rows, counts, missing)
    totals = window.totals()
    assert totals.rows == sum(b[0] for b in batches)
    assert totals.batches == 200
    for name in sizes:
        expected = np.sum([b[1][name] for b in batches], axis=0)
        assert totals.counts[name].dtype == np.int64
        assert np.array_equal(totals.counts[name], expected)
        assert totals.missing[name] == 200
        assert totals.missing_rate[name] == 200 / totals.rows


def test_window_evicts_by_rows_keeping_at_least_n() -> None:
    window = DriftWindow(max_rows=1000)
    one = {"x": np.array([300, 0])}
    for ts in range(5):
        window.add_batch(float(ts), 300, one, {})
    # 5 x 300 rows: dropping the oldest while the rest still holds >= 1000 leaves 4 batches
    assert window.rows == 1200 and len(window) == 4
    window.add_batch(5.0, 700, {"x": np.array([0, 700])}, {})
    # 300 + 300 + 300 + 700 -> 300 + 700 (= 1000) is still enough, so two 300s go
    assert window.rows == 1000 and len(window) == 2
    assert window.totals().counts["x"].tolist() == [300, 700]
    window.add_batch(6.0, 5000, {"x": np.array([5000, 0])}, {})
    assert window.rows == 5000 and len(window) == 1  # one big batch is kept whole


def test_window_evicts_by_age() -> None:
    window = DriftWindow(max_age_s=60.0)
    for ts in (0.0, 30.0, 59.0):
        window.add_batch(ts, 10, {"x": np.array([10])}, {})
    assert window.rows == 30
    window.add_batch(60.0, 10, {"x": np.array([10])}, {})  # ts 0 is now 60 s old: out
    assert window.rows == 30 and len(window) == 3
    window.expire(119.5)  # only the batch of ts 60 is younger than 60 s
    assert window.rows == 10
    window.expire(500.0)
    totals = window.totals()
    assert totals.rows == 0 and totals.counts["x"].tolist() == [0]
    assert np.isnan(totals.missing_rate["x"])


def test_window_rejects_batches_that_do_not_fit() -> None:
    window = DriftWindow(max_rows=10, sizes={"x": 3})
    with pytest.raises(DriftError, match="do not match"):
        window.add_batch(0.0, 3, {"y": np.array([1, 1, 1])}, {})
    with pytest.raises(DriftError, match="3 non-negative integers"):
        window.add_batch(0.0, 3, {"x": np.array([1.5, 1, 0.5])}, {})
    with pytest.raises(DriftError, match=r"plus missing \(1\) must equal the batch rows \(3\)"):
        window.add_batch(0.0, 3, {"x": np.array([1, 1, 1])}, {"x": 1})
    with pytest.raises(DriftError, match="max_rows or max_age_s"):
        DriftWindow()


def _window_of(profile: ReferenceProfile, columns: dict, score: np.ndarray) -> DriftWindow:
    window = DriftWindow(max_rows=5000, sizes=profile.sizes())
    for start in range(0, len(score), 500):  # ten batches of 500 rows
        part = slice(start, start + 500)
        rows, counts, missing = profile.count_batch(
            {n: v[part] for n, v in columns.items()}, score[part]
        )
        window.add_batch(float(start), rows, counts, missing)
    return window


def test_no_drift_is_small_and_tripled_feature_is_large() -> None:
    rng = np.random.default_rng(4)
    profile, _ = _profile(rng)
    _, fresh = _profile(rng, n=5000)  # same distributions, new draws
    window = _window_of(profile, fresh["columns"], fresh["score"])
    assert window.rows == 5000
    report = {d.feature: d for d in drift_report(profile, window)}
    assert set(report) == {"amount", "age", "channel", PREDICTION}
    for d in report.values():
        assert d.psi < 0.1, d
        assert d.js < 0.1, d
        assert d.window_rows == 5000
    assert report[PREDICTION].kind == "prediction"
    assert report["channel"].kind == "categorical"
    assert 0.03 < report["age"].missing_rate < 0.07

    drifted = dict(fresh["columns"], amount=fresh["columns"]["amount"] * 3)
    report = {
        d.feature: d for d in drift_report(profile, _window_of(profile, drifted, fresh["score"]))
    }
    assert report["amount"].psi > 0.25
    assert report["amount"].js > 0.2
    assert report["age"].psi < 0.1


def test_report_of_an_empty_window_is_nan() -> None:
    profile, _ = _profile(np.random.default_rng(5), n=200)
    report = drift_report(profile, DriftWindow(max_rows=100, sizes=profile.sizes()))
    assert all(np.isnan(d.psi) and np.isnan(d.js) and np.isnan(d.missing_rate) for d in report)
    assert all(d.window_rows == 0 for d in report)
