"""The scorer's settings: topics, formats, trigger and delivery, with the checks between them."""

from __future__ import annotations

from dataclasses import dataclass, field

from scorestream.errors import ConfigError
from scorestream.fs import Location
from scorestream.paths import STATE_ROOT
from scorestream.streaming.avro_input import InputFormat
from scorestream.streaming.exactly_once import EXACTLY_ONCE_MAX_OFFSETS
from scorestream.streaming.exactly_once_tasks import TaskCrash
from scorestream.streaming.scoring import OutputFormat, Topics
from scorestream.streaming.validate import ValidationSettings


@dataclass(frozen=True)
class ScorerSettings:
    """Everything the scorer needs besides Kafka and Spark connection settings."""

    input_topic: str = "features"
    output_topic: str = "scores"
    dead_letter_topic: str = ""
    registry: Location = STATE_ROOT / "registry"  # or an hdfs:// (any Hadoop) URI
    model: str = "champion"  # or models:/NAME@ALIAS, models:/NAME/VERSION (MLflow)
    mlflow_uri: str = ""  # the MLflow tracking server of models:/ references
    checkpoint: Location | None = None
    trigger_interval: str = ""
    max_offsets_per_trigger: int | None = None
    min_partitions: int | None = None
    starting_offsets: str = "earliest"
    fail_on_data_loss: bool = True
    create_topics: bool = True
    topic_partitions: int = 2
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    input_format: InputFormat = field(default_factory=InputFormat)
    output_format: OutputFormat = field(default_factory=OutputFormat)
    exactly_once: bool = False
    marker_topic: str = ""  # exactly-once batch markers (empty: <output topic>.markers)
    transaction_timeout_ms: int = 300_000
    # exactly-once: records per micro-batch when max_offsets_per_trigger is unset.
    exactly_once_batch_records: int = EXACTLY_ONCE_MAX_OFFSETS
    startup_timeout_s: float = 30.0  # how long to retry an unreachable broker
    # A batch failing for a reason not in its data (broker, network, authorisation) is
    # retried this many times, after 1, 2, 4... times the backoff (at most 30 s), then the
    # query stops with the failure's message.
    batch_retries: int = 3
    retry_backoff_s: float = 1.0
    # Score by compiled expressions: auto (when parity holds, else the PipelineModel), on, off.
    # The parity check at load runs in the JVM only (models.parity.probe_frame).
    compiled: str = "auto"
    # Test hook (SCORESTREAM_TEST_CRASH_AFTER_COMMIT): hard-exit right after the transaction of
    # this batch commits, before Spark commits the batch to its checkpoint.
    crash_after_commit: int | None = None
    # Test hook (SCORESTREAM_TEST_CRASH_IN_TASK): a task exits mid-transaction, Spark retries it.
    crash_in_task: TaskCrash | None = None
    # False: score and count each batch for the listeners, write nothing (the micro-batch
    # query that monitors a real-time scorer, see streaming/realtime.py).
    publish: bool = True

    @property
    def markers(self) -> str:
        return self.marker_topic or f"{self.output_topic}.markers"

    @property
    def offsets_per_trigger(self) -> int | None:
        """Records per micro-batch: the user's cap, else in exactly-once mode one a
        transaction carries well within its timeout (a backlog becomes many batches)."""
        if self.max_offsets_per_trigger:
            return self.max_offsets_per_trigger
        return self.exactly_once_batch_records if self.exactly_once else None

    def bound(self) -> dict[str, object]:
        """What a checkpoint is bound to (see streaming/preflight.py)."""
        return {
            "input_topic": self.input_topic,
            "output_topic": self.output_topic,
            "dead_letter_topic": self.topics.dead_letter,
            "exactly_once": self.exactly_once,
            "marker_topic": self.markers if self.exactly_once else "",
            "input_format": self.input_format.kind,
            "output_format": self.output_format.kind,
            "trigger": "realtime" if self.realtime else "micro-batch",
        }

    @property
    def realtime(self) -> bool:
        return self.trigger_interval.strip().lower().startswith("real")

    @property
    def topics(self) -> Topics:
        return Topics(
            output=self.output_topic,
            dead_letter=self.dead_letter_topic or f"{self.input_topic}.dlq",
        )

    @property
    def checkpoint_dir(self) -> Location:
        return self.checkpoint or STATE_ROOT / "checkpoints" / (
            f"{self.input_topic}--{self.output_topic}"
        )


def validate_settings(settings: ScorerSettings) -> None:
    if settings.input_topic in (settings.output_topic, settings.topics.dead_letter):
        msg = (
            f"input topic {settings.input_topic!r} must differ from the output and "
            "dead-letter topics"
        )
        raise ConfigError(msg)
    if settings.exactly_once and settings.markers in (
        settings.input_topic,
        settings.output_topic,
        settings.topics.dead_letter,
    ):
        msg = f"marker topic {settings.markers!r} must differ from the data topics"
        raise ConfigError(msg)
    if settings.exactly_once and settings.min_partitions:
        msg = (
            f"--min-partitions {settings.min_partitions} and --exactly-once: each input "
            "partition is published by one task in one transaction, so it cannot be split"
        )
        raise ConfigError(msg)
    if settings.exactly_once and settings.trigger_interval.strip().lower().startswith("real"):
        msg = "--exactly-once needs micro-batch mode (foreachBatch); real-time mode has none"
        raise ConfigError(msg)
