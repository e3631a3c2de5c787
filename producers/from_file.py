"""`scorestream produce --from FILE`: check every row of a user's file, then publish the rows.

The file is read twice. The first pass types every row and collects the bad ones, so a file
with a bad row publishes nothing (the default) instead of stopping half-way with the rows
before it already on the topic; with `skip_bad` the bad rows are reported and left out. The
second pass publishes through the same `publish` as synthetic events (rate, key, format,
Schema Registry id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scorestream.errors import DataError
from scorestream.kafka import KafkaSettings
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.producers.rows import RowError, read_rows, schema_fields

SHOWN_BAD_ROWS = 20  # a message lists this many bad rows, then counts the rest


@dataclass(frozen=True)
class FileSource:
    """A user's event file and the Avro record schema that types its rows."""

    path: Path
    fmt: str  # csv | jsonl | parquet
    schema: Mapping[str, Any]
    skip_bad: bool = False  # False: a bad row stops the command before anything is sent
    event_id: str = "event_id"
    event_time: str = "event_time"


@dataclass
class FileCheck:
    """What the first pass found."""

    good: int = 0
    bad: int = 0
    examples: list[RowError] = field(default_factory=list)

    def describe(self, path: Path) -> str:
        lines = [str(e) for e in self.examples]
        if self.bad > len(self.examples):
            lines.append(f"... and {self.bad - len(self.examples)} more")
        return f"{self.bad} bad rows in {path} ({self.good} good):\n  " + "\n  ".join(lines)


def check_file(source: FileSource) -> FileCheck:
    """Type every row; count the good ones and keep the first bad ones."""
    found = FileCheck()
    fields = schema_fields(source.schema)
    for _where, row in read_rows(source.path, source.fmt, fields, source.event_time):
        if isinstance(row, RowError):
            found.bad += 1
            if len(found.examples) < SHOWN_BAD_ROWS:
                found.examples.append(row)
        else:
            found.good += 1
    return found


def good_rows(source: FileSource) -> Iterator[dict[str, Any]]:
    fields = schema_fields(source.schema)
    for _where, row in read_rows(source.path, source.fmt, fields, source.event_time):
        if not isinstance(row, RowError):
            yield row


def publish_file(
    kafka: KafkaSettings,
    settings: ProduceSettings,
    source: FileSource,
    progress: Callable[[int, float], None] | None = None,
    checked: FileCheck | None = None,
) -> tuple[int, FileCheck]:
    """Publish the file's rows (good ones only with `skip_bad`); DataError listing the bad rows
    when there are any and `skip_bad` is off. Returns (delivered, what the check found)."""
    found = checked or check_file(source)
    if found.bad and not source.skip_bad:
        msg = (
            f"{found.describe(source.path)}\n"
            "nothing was published (--on-bad-row skip sends the rest)"
        )
        raise DataError(msg)
    typed = replace(
        settings,
        schema=source.schema,
        key_field=source.event_id,
        time_field=source.event_time,
    )
    delivered = publish(kafka, typed, good_rows(source), progress=progress)
    return delivered, found
