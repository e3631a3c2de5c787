"""Start-up checks of the scorer, each failing with a message that says what to do."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from scorestream import fs
from scorestream.errors import ConfigError
from scorestream.fs import Location
from scorestream.kafka import (
    KafkaSettings,
    ensure_topics,
    max_message_bytes,
    topic_partitions,
    user_max_request_bytes,
    wait_for_metadata,
)
from scorestream.streaming.scoring import Topics

log = logging.getLogger(__name__)

MANIFEST = "scorestream.json"
# The manifest records what a checkpoint is bound to (ScorerSettings.bound(): topics, formats,
# trigger mode, exactly-once and its marker topic): a restart with other values would resume
# the wrong offsets, write another format under the same offsets, or (exactly-once) compare
# batch ids against another query's markers. Every recorded key is compared.


def check_broker(kafka: KafkaSettings, timeout_s: float) -> None:
    """Ask for cluster metadata until the brokers answer, at most `timeout_s` seconds."""
    wait_for_metadata(kafka, timeout_s)  # raises StackError naming the address


def check_topics(
    kafka: KafkaSettings,
    input_topic: str,
    others: list[str],
    create: bool,
    partitions: int,
    compacted: list[str] | None = None,
) -> list[str]:
    """Create missing topics when allowed, else fail naming the missing input topic."""
    if not create:
        missing = [t for t in [input_topic, *others] if topic_partitions(kafka, t) == 0]
        if missing:
            msg = (
                f"topics {missing} do not exist on {kafka.bootstrap}; create them or run with "
                "--create-topics true"
            )
            raise ConfigError(msg)
        return []
    created = ensure_topics(kafka, [input_topic, *others], partitions=partitions)
    if compacted:
        created += ensure_topics(
            kafka, compacted, partitions=1, config={"cleanup.policy": "compact"}
        )
    return created


def sink_limits(
    kafka: KafkaSettings, topics: Topics, others: Sequence[str] = ()
) -> tuple[Topics, int]:
    """The topics with the largest record each takes, and the max.request.size for the
    scorer's Kafka sinks (the largest of them, unless the user set one: theirs wins).

    A record is refused by the producer above its max.request.size and by the broker above
    the topic's max.message.bytes; a topic's limit here is the smaller of the two, so the
    scorer dead-letters (or cuts) what would not fit instead of failing the batch. `others`:
    further topics the sinks write (the shadow topic), counted in max.request.size only.
    """
    limits = max_message_bytes(kafka, [topics.output, topics.dead_letter, *others])
    user = user_max_request_bytes(kafka)
    request = user if user is not None else max(limits.values())

    def cap(topic: str) -> int:
        return min(limits[topic], request)

    fitted = dataclasses.replace(
        topics,
        output_max_bytes=cap(topics.output),
        dead_letter_max_bytes=cap(topics.dead_letter),
    )
    log.info(
        "record limits: output %s %d bytes, dead letters %s %d bytes, max.request.size %d%s",
        topics.output,
        fitted.output_max_bytes,
        topics.dead_letter,
        fitted.dead_letter_max_bytes,
        request,
        " (set by the user)" if user is not None else "",
    )
    return fitted, request


def _spark_source_topics(checkpoint: Location) -> set[str]:
    """Topics named in the newest offset log entry of a Spark checkpoint (empty if none)."""
    offsets = checkpoint / "offsets"
    store = fs.store(offsets)
    entries = sorted((n for n in store.names(offsets) if n.isdigit()), key=int)
    if not entries:
        return set()
    topics: set[str] = set()
    newest = store.read_bytes(offsets / entries[-1]).decode("utf-8")
    for line in newest.splitlines()[2:]:
        try:
            offsets_json = json.loads(line)
        except ValueError:
            continue
        if isinstance(offsets_json, dict):
            topics |= set(offsets_json)
    return topics


def check_checkpoint(checkpoint: Location, wanted: Mapping[str, Any]) -> None:
    """Refuse a checkpoint written by a query that read or wrote other topics, or other mode."""
    manifest = checkpoint / MANIFEST
    store = fs.store(manifest)
    if store.is_file(manifest):
        try:
            saved = json.loads(store.read_bytes(manifest).decode("utf-8"))
        except ValueError as exc:
            msg = f"{manifest} is not valid JSON ({exc}); the checkpoint is damaged"
            raise ConfigError(msg) from exc
        if not isinstance(saved, dict):
            msg = f"{manifest} is not a JSON object; the checkpoint is damaged"
            raise ConfigError(msg)
        # A key the manifest lacks was not recorded by the version that wrote it: not compared.
        diffs = [
            f"{k}: checkpoint {saved[k]!r}, now {wanted[k]!r}"
            for k in sorted(wanted)
            if k in saved and saved[k] != wanted[k]
        ]
        if diffs:
            msg = (
                f"checkpoint {checkpoint} belongs to another scoring query ({'; '.join(diffs)}); "
                "use a new --checkpoint directory, or the settings it was written with"
            )
            raise ConfigError(msg)
    topics = _spark_source_topics(checkpoint)
    if topics and topics != {wanted["input_topic"]}:
        msg = (
            f"checkpoint {checkpoint} holds offsets of topics {sorted(topics)}, not of the input "
            f"topic {wanted['input_topic']!r}; use a new --checkpoint directory"
        )
        raise ConfigError(msg)


def write_manifest(checkpoint: Location, wanted: Mapping[str, Any]) -> None:
    store = fs.store(checkpoint)
    store.mkdirs(checkpoint)
    data = json.dumps(dict(wanted), indent=2, sort_keys=True) + "\n"
    fs.write_atomic(store, checkpoint / MANIFEST, data.encode("utf-8"))
