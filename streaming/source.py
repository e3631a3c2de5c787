"""The Kafka source of the scoring query, shared by the micro-batch and real-time scorers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

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


def kafka_row_schema() -> StructType:
    """The schema of the Kafka source's rows, for static DataFrames shaped like a batch (tests,
    benchmarks): key, value, topic, partition, offset, timestamp, timestampType."""
    from pyspark.sql.types import (
        BinaryType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    return StructType(
        [
            StructField("key", BinaryType()),
            StructField("value", BinaryType()),
            StructField("topic", StringType()),
            StructField("partition", IntegerType()),
            StructField("offset", LongType()),
            StructField("timestamp", TimestampType()),
            StructField("timestampType", IntegerType()),
        ]
    )
