"""`scorestream retrain`: when to retrain (on demand, on a schedule, on a drift alert) and one run
of it (training set from the topics or a landing file -> models.retrain -> `challenger`).

The loops wait on a stop event (SIGTERM sets it), so a stop never interrupts a training: the
run in progress finishes and publishes, then the loop exits. A drift alert retrains once per
serving version: drift stays high until the retrained model is promoted (the scorer's drift
window starts again for a new champion), so a second alert on the same champion would only
train the same data again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorestream.errors import ConfigError, ScorestreamError
from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.models.retrain import RetrainSettings, retrain
from scorestream.models.source import ModelEntry
from scorestream.monitoring.drift_trigger import DriftTrigger, alert, scrape
from scorestream.streaming import training_set
from scorestream.streaming.training_set import DataWindow

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

RunOnce = Callable[[str], ModelEntry]


@dataclass(frozen=True)
class Schedule:
    """When to retrain: once (neither set), every `every_s` seconds, or on a drift alert polled
    every `poll_s` seconds; at most `max_runs` runs (None: until stopped)."""

    every_s: float | None = None
    drift: DriftTrigger | None = None
    poll_s: float = 30.0
    max_runs: int | None = None

    def __post_init__(self) -> None:
        if self.every_s is not None and self.drift is not None:
            msg = "retrain on a schedule (--every) or on drift (--on-drift), not both"
            raise ConfigError(msg)
        if self.every_s is not None and not self.every_s > 0:
            msg = f"the retraining interval must be > 0 seconds, got {self.every_s}"
            raise ConfigError(msg)
        if not self.poll_s > 0:
            msg = f"the drift poll interval must be > 0 seconds, got {self.poll_s}"
            raise ConfigError(msg)
        if self.max_runs is not None and self.max_runs < 1:
            msg = f"max runs must be at least 1 (or unset), got {self.max_runs}"
            raise ConfigError(msg)


def retrain_once(
    spark: SparkSession,
    kafka: KafkaSettings,
    settings: RetrainSettings,
    window: DataWindow,
    trigger: str = "on demand",
    progress: Callable[[str], None] = lambda _m: None,
) -> ModelEntry:
    """Build the training set of `window` for the base version's spec, train, publish."""
    registry = Registry(settings.registry)
    base = registry.get(registry.resolve(settings.base))
    progress(f"reading labelled events for v{base.version}'s features ...")
    frame, lineage = training_set.build(spark, kafka, base.spec, window)
    try:
        return retrain(spark, frame, settings, {**lineage, "trigger": trigger}, progress)
    finally:
        frame.unpersist()


def run(once: RunOnce, schedule: Schedule, stop: threading.Event) -> list[ModelEntry]:
    """Run `once` as the schedule says until `stop` is set or `max_runs` runs were made.

    In a loop a failed run (too few labels, a broker away) is logged and the loop goes on; a
    single on-demand run raises.
    """
    if schedule.every_s is None and schedule.drift is None:
        return [once("on demand")]
    made: list[ModelEntry] = []
    last_alert_version: int | None = None
    attempts = 0
    while not stop.is_set():
        if schedule.max_runs is not None and attempts >= schedule.max_runs:
            break
        if schedule.drift is not None:
            try:
                reading = scrape(schedule.drift)
            except ScorestreamError as exc:
                log.warning("drift trigger: %s (trying again in %.0f s)", exc, schedule.poll_s)
                stop.wait(schedule.poll_s)
                continue
            reason = alert(reading, schedule.drift)
            seen = last_alert_version is not None and reading.serving_version == last_alert_version
            if reason is None or seen:
                stop.wait(schedule.poll_s)
                continue
            last_alert_version = reading.serving_version
            trigger = reason
        else:
            trigger = f"schedule: every {schedule.every_s:g} s"
        attempts += 1
        try:
            made.append(once(trigger))
        except ScorestreamError as exc:
            log.error("retraining (%s) failed: %s", trigger, exc)
        if schedule.every_s is not None:
            stop.wait(schedule.every_s)
    return made
