"""The Kafka source of the scoring query, shared by the micro-batch and real-time scorers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from scorestream.kafka import KafkaSettings
    from scorestream.streaming.settings import ScorerSettings


def kafka_source(spark: SparkSession, kafka: KafkaSettings, s: ScorerSettings) -> DataFrame:
    """The input topic as a streaming DataFrame, sized by the settings (both trigger modes)."""
    reader = (
        spark.readStream.format("kafka")
        .options(**kafka.spark_options())
        .option("subscribe", s.input_topic)
        .option("startingOffsets", s.starting_offsets)
        .option("failOnDataLoss", str(s.fail_on_data_loss).lower())
    )
    if s.offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(s.offsets_per_trigger))
    if s.min_partitions:
        reader = reader.option("minPartitions", str(s.min_partitions))
    return reader.load()
