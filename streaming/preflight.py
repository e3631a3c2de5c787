"""Start-up checks of the scorer, each failing with a message that says what to do."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scorestream.errors import ConfigError
from scorestream.kafka import KafkaSettings, ensure_topics, topic_partitions, wait_for_metadata

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


def _spark_source_topics(checkpoint: Path) -> set[str]:
    """Topics named in the newest offset log entry of a Spark checkpoint (empty if none)."""
    offsets = checkpoint / "offsets"
    if not offsets.is_dir():
        return set()
    entries = sorted((p for p in offsets.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    if not entries:
        return set()
    topics: set[str] = set()
    for line in entries[-1].read_text(encoding="utf-8").splitlines()[2:]:
        try:
            offsets_json = json.loads(line)
        except ValueError:
            continue
        if isinstance(offsets_json, dict):
            topics |= set(offsets_json)
    return topics


def check_checkpoint(checkpoint: Path, wanted: Mapping[str, Any]) -> None:
    """Refuse a checkpoint written by a query that read or wrote other topics, or other mode."""
    manifest = checkpoint / MANIFEST
    if manifest.is_file():
        try:
            saved = json.loads(manifest.read_text(encoding="utf-8"))
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


def write_manifest(checkpoint: Path, wanted: Mapping[str, Any]) -> None:
    checkpoint.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(dict(wanted), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(checkpoint / MANIFEST)
