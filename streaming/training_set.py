"""A training set from recent labelled events: the labels topic joined by event id to the features
the scorer saw, read from the input topic (a bounded Spark batch read) or a landing file.

The window is a time range (`since_s` back from now) or the last N records of each labels
partition. Offsets are resolved before reading (watermarks and `offsets_for_times`), so the
lineage names exactly the offsets read. The features of a labelled event precede its label, so
the input topic is read from `label_delay_s` before the first label on. Events are decoded and
validated as the scorer does (streaming.validate): only rows the scorer would have scored are
kept. A label is a labels record the feedback loop accepts (`{"event_id", "label": 0|1}`); the
latest label of an event wins, one feature row is kept per event, and every record left out is
counted in the lineage, never dropped unsaid.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError, DataError
from scorestream.kafka import KafkaSettings, describe_error
from scorestream.streaming.avro_input import InputFormat, load_writer_schemas
from scorestream.streaming.scoring import decoder
from scorestream.streaming.validate import REASON, ValidationSettings, validate

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

Offsets = dict[int, tuple[int, int]]  # partition -> [start, end)


@dataclass(frozen=True)
class DataWindow:
    """Which labels (and so which features) a retraining reads."""

    labels_topic: str = "labels"
    input_topic: str = "features"
    since_s: float | None = 3600.0  # labels of the last hour ...
    last: int | None = None  # ... or the last N records of each labels partition
    label_delay_s: float = 3600.0  # features are read from this long before the first label
    features_path: str | None = None  # a landing file (Parquet/CSV) instead of the input topic
    features_format: str | None = None
    input_format: InputFormat = field(default_factory=InputFormat)
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if (self.since_s is None) == (self.last is None):
            msg = "the data window needs one of since (a duration) or last (records), not both"
            raise ConfigError(msg)
        if self.since_s is not None and not self.since_s > 0:
            msg = f"the data window's duration must be > 0 seconds, got {self.since_s}"
            raise ConfigError(msg)
        if self.last is not None and self.last < 1:
            msg = f"the data window's last N records needs N >= 1, got {self.last}"
            raise ConfigError(msg)
        if self.label_delay_s < 0:
            msg = f"the label delay must be >= 0 seconds, got {self.label_delay_s}"
            raise ConfigError(msg)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()


def offset_range(
    kafka: KafkaSettings,
    topic: str,
    *,
    since_ms: int | None = None,
    last: int | None = None,
    timeout_s: float = 30.0,
) -> Offsets:
    """[start, end) offsets per partition: from the first record at or after `since_ms`, or the
    last `last` records; `end` is the high watermark at the time of the call."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        kafka.confluent(
            **{
                "group.id": f"scorestream-retrain-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            msg = f"topic {topic!r} does not exist on {kafka.bootstrap}"
            raise DataError(msg)
        partitions = sorted(found.partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            for p in partitions
        }
        if last is not None:
            return {p: (max(low, high - last), high) for p, (low, high) in ends.items()}
        wanted = [TopicPartition(topic, p, int(since_ms or 0)) for p in partitions]
        starts = consumer.offsets_for_times(wanted, timeout=timeout_s)
        result: Offsets = {}
        for tp in starts:
            low, high = ends[tp.partition]
            # -1: no record at or after the time, so nothing of this partition is in the window
            start = high if tp.offset < 0 else max(tp.offset, low)
            result[tp.partition] = (start, high)
        return result
    except KafkaException as exc:
        msg = f"cannot resolve offsets of {topic!r} on {kafka.bootstrap}: {describe_error(exc)}"
        raise DataError(msg) from exc
    finally:
        consumer.close()


def read_range(
    spark: SparkSession, kafka: KafkaSettings, topic: str, offsets: Offsets
) -> DataFrame:
    """The records of `offsets` as a batch DataFrame (Kafka source columns)."""
    start = {topic: {str(p): s for p, (s, _) in offsets.items()}}
    end = {topic: {str(p): e for p, (_, e) in offsets.items()}}
    return (
        spark.read.format("kafka")
        .options(**kafka.spark_options())
        .option("assign", json.dumps({topic: sorted(offsets)}))
        .option("startingOffsets", json.dumps(start))
        .option("endingOffsets", json.dumps(end))
        .option("failOnDataLoss", "false")  # retention may have removed the oldest records
        .load()
    )


def parse_labels(raw: DataFrame, event_id: str = "event_id") -> DataFrame:
    """Labels records -> event_id, label (0.0/1.0, null when not a label), timestamp, partition,
    offset; the same records `streaming.feedback.parse_label` accepts."""
    from pyspark.sql import functions as F

    record = F.from_json(F.col("value").cast("string"), "event_id STRING, label STRING")
    text = F.lower(F.trim(F.col("_l.label")))
    label = (
        F.when(text.isin("1", "1.0", "true"), F.lit(1.0))
        .when(text.isin("0", "0.0", "false"), F.lit(0.0))
        .otherwise(F.lit(None).cast("double"))
    )
    parsed = raw.select(record.alias("_l"), "timestamp", "partition", "offset")
    good = F.col("_l.event_id").isNotNull() & label.isNotNull()
    return parsed.select(
        F.when(good, F.col("_l.event_id")).alias(event_id),
        F.when(good, label).alias("label"),
        "timestamp",
        "partition",
        "offset",
    )


def latest_labels(labels: DataFrame, event_id: str, label: str) -> DataFrame:
    """One label per event: the latest record's (a label re-sent later corrects the earlier)."""
    from pyspark.sql import functions as F

    order = F.struct("timestamp", "partition", "offset")
    return (
        labels.where(F.col("label").isNotNull())
        .groupBy(event_id)
        .agg(F.max_by("label", order).alias(label))
    )


def decoded_features(
    spark: SparkSession, raw: DataFrame, spec: FeatureSpec, fmt: InputFormat
) -> DataFrame:
    """Input-topic records decoded and validated as the scorer does (`_reason` null: good)."""
    writers = None if fmt.kind == "json" else load_writer_schemas(spark, fmt)
    plan = validate(decoder(raw, spec, fmt, writers), spec, ValidationSettings())
    return plan.apply(raw)


def _features_from_file(spark: SparkSession, window: DataWindow, spec: FeatureSpec) -> DataFrame:
    from scorestream.models.data import check_columns, read_table
    from scorestream.models.scoring import typed_features

    assert window.features_path is not None
    frame = read_table(spark, window.features_path, window.features_format)
    if spec.event_id not in frame.columns:
        msg = (
            f"{window.features_path}: the event id column {spec.event_id!r} is missing "
            f"(the file has {sorted(frame.columns)}); it joins the features to the labels"
        )
        raise DataError(msg)
    check_columns(frame, spec, window.features_path, label=False)
    keep = [spec.event_id, *spec.feature_names]
    if spec.event_time in frame.columns:
        keep.append(spec.event_time)
    return typed_features(frame.select(*keep), spec, where=window.features_path)


def build(
    spark: SparkSession,
    kafka: KafkaSettings,
    spec: FeatureSpec,
    window: DataWindow,
    now_ms: int | None = None,
) -> tuple[DataFrame, dict[str, Any]]:
    """(labelled rows: event id, event time, features, label; their lineage)."""
    from pyspark.sql import functions as F

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    since_ms = None if window.since_s is None else now_ms - int(window.since_s * 1000)
    label_offsets = offset_range(
        kafka, window.labels_topic, since_ms=since_ms, last=window.last, timeout_s=window.timeout_s
    )
    labels_raw = parse_labels(
        read_range(spark, kafka, window.labels_topic, label_offsets), spec.event_id
    ).cache()
    counts = labels_raw.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("label").isNull().cast("int")).alias("invalid"),
        F.min("timestamp").alias("first"),
        F.max("timestamp").alias("latest"),
    ).first()
    assert counts is not None
    if not counts["n"]:
        labels_raw.unpersist()
        shown = {p: list(r) for p, r in label_offsets.items()}
        msg = (
            f"no labels in {window.labels_topic!r} in the window "
            f"({'since ' + str(_iso(since_ms)) if since_ms else f'last {window.last}'}; "
            f"offsets {shown}): nothing to retrain on"
        )
        raise DataError(msg)
    first_ms = int(counts["first"].timestamp() * 1000)
    cached = [labels_raw]  # released once the joined rows are cached
    labels = latest_labels(labels_raw, spec.event_id, spec.label)
    lineage: dict[str, Any] = {
        "labels": {
            "topic": window.labels_topic,
            "offsets": {str(p): list(r) for p, r in sorted(label_offsets.items())},
            "records": int(counts["n"]),
            "invalid": int(counts["invalid"] or 0),
            "from": _iso(first_ms),
            "to": _iso(int(counts["latest"].timestamp() * 1000)),
        },
        "window": {
            "since": _iso(since_ms),
            "last_per_partition": window.last,
            "label_delay_s": window.label_delay_s,
            "until": _iso(now_ms),
        },
    }
    if window.features_path:
        features = _features_from_file(spark, window, spec)
        lineage["source"] = f"retrain:labels={window.labels_topic}+file={window.features_path}"
        lineage["features"] = {"path": window.features_path}
        rejected = None
    else:
        feature_from = first_ms - int(window.label_delay_s * 1000)
        offsets = offset_range(
            kafka, window.input_topic, since_ms=feature_from, timeout_s=window.timeout_s
        )
        decoded = decoded_features(
            spark, read_range(spark, kafka, window.input_topic, offsets), spec, window.input_format
        ).select(REASON, spec.event_id, spec.event_time, *spec.feature_names)
        decoded = decoded.cache()  # counted here, joined below: Kafka is read once
        cached.append(decoded)
        rejected = decoded.where(F.col(REASON).isNotNull()).count()
        features = decoded.where(F.col(REASON).isNull()).drop(REASON)
        lineage["source"] = f"retrain:labels={window.labels_topic}+topic={window.input_topic}"
        lineage["features"] = {
            "topic": window.input_topic,
            "offsets": {str(p): list(r) for p, r in sorted(offsets.items())},
            "from": _iso(feature_from),
            "dead_letter_records": rejected,
        }
    features = features.dropDuplicates([spec.event_id])
    labels = labels.cache()
    cached.append(labels)
    labelled = labels.count()
    joined = labels.join(features, on=spec.event_id, how="inner").cache()
    rows = joined.count()
    for frame in cached:
        frame.unpersist()
    lineage["labels"]["events"] = labelled
    lineage["labels"]["without_features"] = labelled - rows
    return joined, lineage
