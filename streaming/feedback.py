"""Feedback from labels: join late labels to recent champion/challenger scores, keep rolling
ROC AUC and log loss of both, and (optionally) promote a challenger that proves better.

Labels arrive on their own topic as JSON `{"event_id": ..., "label": 0|1, "label_time": ...}`,
usually long after the score. Scores of the last `max_scores` events are kept in memory (oldest
dropped first), labels that arrive before their score wait in a bounded buffer; a joined label
goes into a window of the last `window` labelled events of the current (champion, challenger)
pair of versions. When the pair changes the window starts again: figures of different versions
are never mixed.

Auto-promotion: once the window holds at least `min_labels` events with both classes, the
challenger is promoted to champion when its metric beats the champion's by `margin` (ROC AUC
higher, or log loss lower). The reason, with the figures, is written to the registry's alias
record; the scorer picks the new champion up at its next micro-batch.

The loop is a batch listener of its own: it reads each batch's champion scores from the scored
rows, and the challenger's from the shadow scorer when one ran on that batch (`shadow`). So
feedback works with `--shadow false` (champion figures only, no promotion), and a failed
shadow batch costs the challenger's figures of that batch, never the champion's.

One module (about 370 lines) because the join of labels to scores, the window that never
mixes version pairs and the promotion rule are one state machine over the same buffers; the
two numpy metrics it decides on are the only other code here.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from scorestream.errors import AliasConflict, ConfigError, ModelError
from scorestream.kafka import KafkaSettings, describe_error
from scorestream.models.source import ModelSource
from scorestream.streaming.shadow import Compared, ShadowScorer
from scorestream.streaming.validate import REASON

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from scorestream.streaming.listeners import BatchStats, Listened

log = logging.getLogger(__name__)

METRICS = ("roc_auc", "log_loss")
EPS = 1e-15


@dataclass(frozen=True)
class FeedbackSettings:
    """The labels topic, the rolling window and the promotion rule."""

    labels_topic: str
    window: int = 5_000  # labelled events the figures are computed over
    min_labels: int = 1_000  # labelled events needed before a promotion is considered
    margin: float = 0.01  # how much better the challenger must be
    metric: str = "roc_auc"  # roc_auc (higher is better) or log_loss (lower is better)
    auto_promote: bool = False
    max_scores: int = 200_000  # recent scores kept for the join
    max_pending_labels: int = 50_000  # labels waiting for their score

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            msg = f"unknown feedback metric {self.metric!r}; expected one of {', '.join(METRICS)}"
            raise ConfigError(msg)
        for name in ("window", "min_labels", "max_scores", "max_pending_labels"):
            if getattr(self, name) < 1:
                msg = f"feedback {name} must be at least 1, got {getattr(self, name)}"
                raise ConfigError(msg)
        if self.min_labels > self.window:
            msg = (
                f"feedback min_labels ({self.min_labels}) is larger than the window "
                f"({self.window}): no promotion could ever be considered"
            )
            raise ConfigError(msg)
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            msg = f"promotion margin must be a finite number >= 0, got {self.margin}"
            raise ConfigError(msg)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half; NaN with one class."""
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    positives = int((labels == 1).sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    # Average ranks over ties.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(scores)]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean binary cross-entropy, scores clipped to [1e-15, 1 - 1e-15]; NaN when empty."""
    if len(labels) == 0:
        return math.nan
    y = np.asarray(labels, dtype=float)
    p = np.clip(np.asarray(scores, dtype=float), EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass(frozen=True)
class Figures:
    """Rolling figures of the current (champion, challenger) pair."""

    champion_version: int
    challenger_version: int | None
    labelled: int
    positives: int
    champion_auc: float
    champion_log_loss: float
    challenger_auc: float
    challenger_log_loss: float

    def gain(self, metric: str) -> float:
        """How much better the challenger is (positive: better) on `metric`."""
        if metric == "roc_auc":
            return self.challenger_auc - self.champion_auc
        return self.champion_log_loss - self.challenger_log_loss


def parse_label(value: bytes | None) -> tuple[str, int] | None:
    """(event_id, label) of a labels record, None when it is not one (logged by the caller)."""
    try:
        record = json.loads(value or b"")
        event_id = record["event_id"]
        label = record["label"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(label, bool):
        label = int(label)
    if label not in (0, 1) or event_id is None:
        return None
    return str(event_id), int(label)


class FeedbackLoop:
    """BatchListener: joins labels to scores and decides promotions; the challenger's scores
    come from `shadow` (a ShadowScorer listening before this loop, with keep_pairs)."""

    name = "feedback"

    def __init__(
        self,
        settings: FeedbackSettings,
        registry: ModelSource,
        kafka: KafkaSettings | None = None,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.kafka = kafka
        self.shadow = shadow
        self._event_id: Callable[[], str] = lambda: "event_id"
        # event_id -> (champion version, champion score, challenger version, challenger score)
        self._scores: OrderedDict[str, tuple[int, float, int | None, float | None]] = OrderedDict()
        self._pending: OrderedDict[str, int] = OrderedDict()
        self._window: deque[tuple[int, float, float | None]] = deque(maxlen=settings.window)
        self._pair: tuple[int, int | None] | None = None
        self._lock = threading.Lock()
        self._consumer: Any = None
        self.labels_seen = 0
        self.labels_invalid = 0
        self.labels_unmatched_dropped = 0
        self.promotions: list[dict[str, Any]] = []
        self.last: Figures | None = None

    # -- input -------------------------------------------------------------------------------
    def attach(self, scorer: Listened) -> None:
        """Read the event id column from the scorer's serving model."""
        holder = scorer.holder
        self._event_id = lambda: holder.spec.event_id

    def on_batch(self, scored: DataFrame, stats: BatchStats) -> None:
        """One written batch: its scores (pairs from the shadow when it ran), then the labels
        that came in, then the figures and a possible promotion."""
        if stats.scored:
            pairs = None if self.shadow is None else self.shadow.take_pairs(stats.batch_id)
            self.add_scores(pairs if pairs is not None else self._champion_only(scored))
        self.on_batch_end()

    def _champion_only(self, scored: DataFrame) -> list[Compared]:
        from pyspark.sql import functions as F

        return [
            (str(r[0]), int(r[1]), float(r[2]), None, None)
            for r in scored.where(F.col(REASON).isNull())
            .select(self._event_id(), "model_version", "score")
            .toLocalIterator()
        ]

    def add_scores(self, rows: Sequence[Compared]) -> None:
        """Scores of one batch: remember them, join waiting labels."""
        with self._lock:
            cap = self.settings.max_scores
            for event_id, champ_v, champ_s, chall_v, chall_s in rows:
                self._scores[event_id] = (champ_v, champ_s, chall_v, chall_s)
                self._scores.move_to_end(event_id)
                label = self._pending.pop(event_id, None)
                if label is not None:
                    self._join(event_id, label)
            while len(self._scores) > cap:
                self._scores.popitem(last=False)

    def add_labels(self, labels: Iterable[tuple[str, int]]) -> None:
        with self._lock:
            for event_id, label in labels:
                self.labels_seen += 1
                if event_id in self._scores:
                    self._join(event_id, label)
                else:
                    self._pending[event_id] = label
                    if len(self._pending) > self.settings.max_pending_labels:
                        self._pending.popitem(last=False)
                        self.labels_unmatched_dropped += 1

    def _join(self, event_id: str, label: int) -> None:
        champ_v, champ_s, chall_v, chall_s = self._scores.pop(event_id)
        pair = (champ_v, chall_v)
        if pair != self._pair:
            if self._pair is not None:
                log.info("feedback window restarts: versions %s -> %s", self._pair, pair)
            self._window.clear()
            self._pair = pair
        self._window.append((label, champ_s, chall_s))

    # -- labels topic ------------------------------------------------------------------------
    def poll(self, max_records: int = 50_000) -> int:
        """Read what the labels topic has now (no waiting); return how many labels came in."""
        if self.kafka is None:
            return 0
        if self._consumer is None:
            from confluent_kafka import Consumer

            self._consumer = Consumer(
                self.kafka.confluent(
                    **{
                        "group.id": f"scorestream-feedback-{uuid.uuid4().hex[:8]}",
                        "auto.offset.reset": "earliest",
                        "enable.auto.commit": False,
                    }
                )
            )
            self._consumer.subscribe([self.settings.labels_topic])
        parsed: list[tuple[str, int]] = []
        while len(parsed) < max_records:
            messages = self._consumer.consume(num_messages=5_000, timeout=0.05)
            if not messages:
                break
            for m in messages:
                if m.error():
                    log.warning("labels topic: %s", describe_error(Exception(str(m.error()))))
                    continue
                label = parse_label(m.value())
                if label is None:
                    self.labels_invalid += 1
                else:
                    parsed.append(label)
        self.add_labels(parsed)
        return len(parsed)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- figures and promotion ---------------------------------------------------------------
    def figures(self) -> Figures | None:
        with self._lock:
            if self._pair is None or not self._window:
                return None
            rows = list(self._window)
            champion_version, challenger_version = self._pair
        labels = np.array([r[0] for r in rows], dtype=float)
        champ = np.array([r[1] for r in rows], dtype=float)
        if challenger_version is not None:
            chall = np.array([r[2] for r in rows], dtype=float)
            chall_auc, chall_loss = roc_auc(labels, chall), log_loss(labels, chall)
        else:
            chall_auc = chall_loss = math.nan
        return Figures(
            champion_version=champion_version,
            challenger_version=challenger_version,
            labelled=len(rows),
            positives=int(labels.sum()),
            champion_auc=roc_auc(labels, champ),
            champion_log_loss=log_loss(labels, champ),
            challenger_auc=chall_auc,
            challenger_log_loss=chall_loss,
        )

    def decide(self, figures: Figures) -> str | None:
        """The reason to promote the challenger, or None."""
        s = self.settings
        if figures.challenger_version is None or figures.labelled < s.min_labels:
            return None
        gain = figures.gain(s.metric)
        if math.isnan(gain) or gain < s.margin:
            return None
        name = "ROC AUC" if s.metric == "roc_auc" else "log loss"
        mine = figures.challenger_auc if s.metric == "roc_auc" else figures.challenger_log_loss
        theirs = figures.champion_auc if s.metric == "roc_auc" else figures.champion_log_loss
        return (
            f"auto-promote: challenger v{figures.challenger_version} {name} {mine:.4f} vs "
            f"champion v{figures.champion_version} {theirs:.4f} over {figures.labelled} "
            f"labelled events ({figures.positives} positive); margin {s.margin:g} "
            f"(ROC AUC {figures.challenger_auc:.4f} vs {figures.champion_auc:.4f}, log loss "
            f"{figures.challenger_log_loss:.4f} vs {figures.champion_log_loss:.4f})"
        )

    def evaluate(self) -> Figures | None:
        """Compute the figures; promote when allowed and earned. Called once per batch."""
        figures = self.figures()
        self.last = figures
        if figures is None:
            return None
        reason = self.decide(figures)
        if reason is None or not self.settings.auto_promote:
            return figures
        assert figures.challenger_version is not None
        try:
            # Conditional on the champion the figures were computed against: a promotion or
            # rollback made meanwhile wins, and the window restarts with the new pair.
            record = self.registry.promote(
                figures.challenger_version,
                "champion",
                reason,
                expected=figures.champion_version,
            )
        except AliasConflict as exc:
            log.info("auto-promotion of v%d skipped: %s", figures.challenger_version, exc)
            return figures
        except ModelError as exc:
            log.error("auto-promotion of v%d failed: %s", figures.challenger_version, exc)
            return figures
        self.promotions.append(record)
        log.warning("%s", reason)
        with self._lock:
            self._window.clear()  # the next figures compare the new pair
        return figures

    def on_batch_end(self) -> None:
        """Poll labels, then evaluate (after each batch)."""
        self.poll()
        figures = self.evaluate()
        if figures is not None:
            log.info(
                "feedback: %d labelled; champion v%d AUC %.4f log loss %.4f; challenger %s",
                figures.labelled,
                figures.champion_version,
                figures.champion_auc,
                figures.champion_log_loss,
                "none"
                if figures.challenger_version is None
                else f"v{figures.challenger_version} AUC {figures.challenger_auc:.4f} "
                f"log loss {figures.challenger_log_loss:.4f}",
            )
