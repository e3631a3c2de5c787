"""Scoring as a pure DataFrame -> DataFrame function: Kafka rows in, Kafka rows (scores + DLQ) out.

The same function serves the streaming query (both trigger modes), batch scoring and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.evaluate import score_column
from models.spec import FeatureSpec
from streaming.validate import MESSAGE, REASON, ValidationSettings, decode_json, validate

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column, DataFrame

# Kafka header names on score and dead-letter records.
H_PARTITION = "scorestream.source.partition"
H_OFFSET = "scorestream.source.offset"
H_TOPIC = "scorestream.source.topic"
H_REASON = "scorestream.error.reason"
H_MESSAGE = "scorestream.error.message"
H_MODEL = "scorestream.model.version"


@dataclass(frozen=True)
class Topics:
    """Where scores and dead-letter records go."""

    output: str
    dead_letter: str


def _header(name: str, value: Column) -> Column:
    from pyspark.sql import functions as F

    return F.struct(F.lit(name).alias("key"), value.cast("string").cast("binary").alias("value"))


def score_events(
    validated: DataFrame, model: PipelineModel, version: int, spec: FeatureSpec
) -> DataFrame:
    """Apply the model to validated rows; adds `score`, `prediction`, `model_version`."""
    from pyspark.sql import functions as F

    scored = model.transform(validated)
    return scored.withColumn("score", score_column()).withColumn("model_version", F.lit(version))


def to_kafka(scored: DataFrame, spec: FeatureSpec, topics: Topics) -> DataFrame:
    """Kafka sink rows: a score for good records, the original bytes for dead-lettered ones."""
    from pyspark.sql import functions as F

    good = F.col(REASON).isNull()
    score_value = F.to_json(
        F.struct(
            F.col(spec.event_id).alias("event_id"),
            F.col("score"),
            F.col("prediction"),
            F.col("model_version"),
            F.col(spec.event_time).alias("event_time"),
            F.current_timestamp().alias("scored_at"),
        ),
        {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"},
    )
    score_headers = F.array(
        _header(H_PARTITION, F.col("_src_partition")),
        _header(H_OFFSET, F.col("_src_offset")),
        _header(H_MODEL, F.col("model_version")),
    )
    dlq_headers = F.array(
        _header(H_REASON, F.col(REASON)),
        _header(H_MESSAGE, F.col(MESSAGE)),
        _header(H_TOPIC, F.col("_src_topic")),
        _header(H_PARTITION, F.col("_src_partition")),
        _header(H_OFFSET, F.col("_src_offset")),
    )
    return scored.select(
        F.when(good, F.lit(topics.output)).otherwise(F.lit(topics.dead_letter)).alias("topic"),
        F.when(good, F.col(spec.event_id).cast("binary")).otherwise(F.col("_src_key")).alias("key"),
        F.when(good, score_value.cast("binary")).otherwise(F.col("_src_value")).alias("value"),
        F.when(good, score_headers).otherwise(dlq_headers).alias("headers"),
        F.col(REASON),
        F.col(spec.event_time).alias("_event_time"),
    )


def score_records(
    raw: DataFrame,
    model: PipelineModel,
    version: int,
    spec: FeatureSpec,
    validation: ValidationSettings,
) -> DataFrame:
    """Kafka source rows -> typed features, `_reason`/`_message`, `score`, `prediction`."""
    validated = validate(decode_json(raw, spec), spec, validation)
    return score_events(validated, model, version, spec)


def score_kafka_rows(
    raw: DataFrame,
    model: PipelineModel,
    version: int,
    spec: FeatureSpec,
    topics: Topics,
    validation: ValidationSettings,
) -> DataFrame:
    """Kafka source rows -> Kafka sink rows (plus `_reason`, `_event_time` for metrics)."""
    return to_kafka(score_records(raw, model, version, spec, validation), spec, topics)
