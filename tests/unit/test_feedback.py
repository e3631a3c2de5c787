"""The feedback loop without a JVM: metrics against sklearn-free references, the bounded join,
the window restart on a version change, and the promotion rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scorestream.errors import ConfigError
from scorestream.models.registry import Registry
from scorestream.streaming.feedback import (
    FeedbackLoop,
    FeedbackSettings,
    log_loss,
    parse_label,
    roc_auc,
)


def _brute_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def test_roc_auc_equals_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.3).astype(float)
    scores = np.round(rng.random(400) + 0.3 * labels, 1)  # rounded: many ties
    assert roc_auc(labels, scores) == pytest.approx(_brute_auc(labels, scores), abs=1e-12)
    assert roc_auc(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1])) == 1.0
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_log_loss_matches_the_formula_and_clips() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.6, 0.4])
    expected = -np.mean([math.log(0.9), math.log(0.8), math.log(0.6), math.log(0.6)])
    assert log_loss(y, p) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(log_loss(np.array([1]), np.array([0.0])))  # clipped, not inf


def test_parse_label_accepts_only_binary_labels() -> None:
    assert parse_label(json.dumps({"event_id": "e1", "label": 1}).encode()) == ("e1", 1)
    assert parse_label(json.dumps({"event_id": 7, "label": False}).encode()) == ("7", 0)
    for bad in (b"nope", b"{}", json.dumps({"event_id": "e", "label": 2}).encode(), None):
        assert parse_label(bad) is None


def _registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")  # not touched unless a promotion happens


def test_labels_join_scores_in_either_order_and_memory_is_bounded(tmp_path: Path) -> None:
    loop = FeedbackLoop(
        FeedbackSettings("labels", window=10, min_labels=1, max_scores=3, max_pending_labels=2),
        _registry(tmp_path),
    )
    loop.add_labels([("late-score", 1)])  # the label first: it waits
    loop.add_scores([(f"e{i}", 1, 0.1 * i, 2, 0.2) for i in range(5)])  # only e2..e4 kept
    loop.add_scores([("late-score", 1, 0.9, 2, 0.8)])  # joins the waiting label
    loop.add_labels([("e0", 0), ("e4", 0), ("never-1", 1), ("never-2", 1), ("never-3", 1)])
    figures = loop.figures()
    assert figures is not None
    assert figures.labelled == 2  # late-score and e4; e0 was evicted
    assert loop.labels_unmatched_dropped == 2  # e0 and never-1 pushed out of the buffer
    assert len(loop._scores) <= 3 and len(loop._pending) <= 2


def test_window_restarts_when_the_versions_change(tmp_path: Path) -> None:
    loop = FeedbackLoop(FeedbackSettings("labels", window=100, min_labels=1), _registry(tmp_path))
    loop.add_scores([("a", 1, 0.9, 2, 0.8), ("b", 1, 0.1, 2, 0.2)])
    loop.add_labels([("a", 1), ("b", 0)])
    assert loop.figures().labelled == 2  # type: ignore[union-attr]
    loop.add_scores([("c", 2, 0.7, 3, 0.6)])
    loop.add_labels([("c", 1)])
    figures = loop.figures()
    assert figures is not None
    assert (figures.champion_version, figures.challenger_version, figures.labelled) == (2, 3, 1)


def _stream(loop: FeedbackLoop, n: int, challenger_better: bool, seed: int = 1) -> None:
    """Labelled events where one model's score carries the label and the other is noise."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.2).astype(int)
    informed = np.clip(0.2 + 0.5 * labels + rng.normal(0, 0.2, n), 0.01, 0.99)
    noise = np.clip(rng.random(n), 0.01, 0.99)
    champ, chall = (noise, informed) if challenger_better else (informed, noise)
    loop.add_scores([(f"e{i}", 1, champ[i], 2, chall[i]) for i in range(n)])
    loop.add_labels([(f"e{i}", int(labels[i])) for i in range(n)])


def test_decide_promotes_only_a_better_challenger_with_enough_labels(tmp_path: Path) -> None:
    settings = FeedbackSettings("labels", window=2_000, min_labels=500, margin=0.05)
    better = FeedbackLoop(settings, _registry(tmp_path))
    _stream(better, 400, challenger_better=True)
    figures = better.figures()
    assert figures is not None and better.decide(figures) is None  # 400 < 500 labels
    _stream(better, 400, challenger_better=True, seed=2)
    figures = better.figures()
    assert figures is not None
    reason = better.decide(figures)
    assert reason is not None and "challenger v2 ROC AUC" in reason and "over 800" in reason

    worse = FeedbackLoop(settings, _registry(tmp_path))
    _stream(worse, 800, challenger_better=False)
    figures = worse.figures()
    assert figures is not None and figures.gain("roc_auc") < 0
    assert worse.decide(figures) is None

    by_loss = FeedbackLoop(
        FeedbackSettings("labels", window=2_000, min_labels=500, metric="log_loss"),
        _registry(tmp_path),
    )
    _stream(by_loss, 800, challenger_better=True)
    figures = by_loss.figures()
    assert figures is not None and figures.challenger_log_loss < figures.champion_log_loss
    assert by_loss.decide(figures) is not None


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"metric": "accuracy"}, "unknown feedback metric 'accuracy'"),
        ({"window": 0}, "window must be at least 1, got 0"),
        ({"window": 10, "min_labels": 20}, "min_labels (20) is larger than the window (10)"),
        ({"margin": -0.1}, "margin must be a finite number >= 0, got -0.1"),
    ],
)
def test_settings_name_the_bad_value(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(ConfigError) as info:
        FeedbackSettings("labels", **kwargs)  # type: ignore[arg-type]
    assert text in str(info.value)
