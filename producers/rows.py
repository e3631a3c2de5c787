"""Users' own event files (CSV, JSON lines, Parquet) read as typed rows for `produce --from`.

Rows are typed by an Avro record schema: a given one, or the one a model version's feature spec
implies (`spec_schema`). A value that does not fit its field is a RowError naming the line (the
row for Parquet) and the column; nothing half-typed leaves this module. Columns the schema
does not declare are left out (a training file's label, say); a declared field the file lacks
is null where the schema allows it, and an error where it does not (the event time excepted:
the publisher stamps it).

One module (about 300 lines) because every reader (CSV, JSON lines, Parquet) ends in the
same `type_row` over the same `Field`s, so a value is typed, and refused, the same way
whatever the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ConfigError, DataError

FILE_FORMATS = ("csv", "jsonl", "parquet")
EXTENSIONS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
KINDS = ("string", "double", "float", "long", "int", "boolean", "timestamp")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class RowError(DataError):
    """A row whose value does not fit its field: where it is and why."""

    def __init__(self, where: str, column: str, problem: str) -> None:
        self.where, self.column, self.problem = where, column, problem
        super().__init__(f"{where}, column {column!r}: {problem}")


@dataclass(frozen=True)
class Field:
    """One typed field of the rows."""

    name: str
    kind: str  # one of KINDS
    nullable: bool


def file_format(path: Path, given: str = "") -> str:
    """The file's format: `given`, else by its extension."""
    if given:
        if given not in FILE_FORMATS:
            msg = f"unknown file format {given!r}; expected one of {', '.join(FILE_FORMATS)}"
            raise ConfigError(msg)
        return given
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None:
        msg = (
            f"cannot tell the format of {path} from its extension {path.suffix!r}; expected "
            f"one of {', '.join(sorted(EXTENSIONS))}, or say --from-format csv|jsonl|parquet"
        )
        raise ConfigError(msg)
    return found


def spec_schema(spec: FeatureSpec) -> dict[str, Any]:
    """The Avro record schema of a feature spec's events (id, time, features, all nullable
    but the id)."""
    fields: list[dict[str, Any]] = [
        {"name": spec.event_id, "type": "string"},
        {"name": spec.event_time, "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ]
    fields += [{"name": n, "type": ["null", "double"], "default": None} for n in spec.numeric_names]
    fields += [{"name": n, "type": ["null", "string"], "default": None} for n in spec.categorical]
    return {
        "type": "record",
        "name": "Event",
        "namespace": "io.scorestream.events",
        "fields": fields,
    }


def _kind(avro_type: Any, name: str) -> tuple[str, bool]:
    """(kind, nullable) of an Avro field type we can fill from a file."""
    nullable = False
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        nullable = len(others) < len(avro_type)
        if len(others) != 1:
            msg = f"field {name!r} has the union type {avro_type}; expected one type or [null, T]"
            raise ConfigError(msg)
        avro_type = others[0]
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
            return "timestamp", nullable
        avro_type = avro_type.get("type")
    if avro_type not in KINDS:
        msg = f"field {name!r} has the Avro type {avro_type!r}; files can fill {', '.join(KINDS)}"
        raise ConfigError(msg)
    return str(avro_type), nullable


def schema_fields(schema: Mapping[str, Any]) -> list[Field]:
    """The typed fields of an Avro record schema."""
    return [Field(f["name"], *_kind(f["type"], f["name"])) for f in schema["fields"]]


def _epoch_ms(value: Any) -> int:
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(stamp.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return _epoch_ms(stamp)
    raise ValueError


def _typed(field: Field, value: Any, from_text: bool) -> Any:
    """The value as its field's type, or ValueError with what was expected."""
    kind = field.kind
    try:
        if kind == "string":
            if isinstance(value, str):
                return value
            raise ValueError
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if from_text and str(value).strip().lower() in _TRUE + _FALSE:
                return str(value).strip().lower() in _TRUE
            raise ValueError
        if kind in ("double", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError
            if isinstance(value, str) and not from_text:
                raise ValueError
            return float(value)
        if kind in ("long", "int"):
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, int) or (from_text and isinstance(value, str)):
                return int(value)
            raise ValueError
        return _epoch_ms(value)  # timestamp
    except (ValueError, TypeError, OverflowError):
        expected = {
            "string": "text",
            "boolean": "true or false",
            "double": "a number",
            "float": "a number",
            "long": "an integer",
            "int": "an integer",
            "timestamp": "epoch milliseconds or an ISO-8601 time",
        }[kind]
        shown = repr(value) if not isinstance(value, float) or math.isfinite(value) else value
        msg = f"{shown} is not {expected}"
        raise ValueError(msg) from None


def type_row(
    raw: Mapping[str, Any], fields: list[Field], where: str, from_text: bool, stamped: str
) -> dict[str, Any]:
    """One row as typed values of `fields` (RowError naming `where` and the column)."""
    row: dict[str, Any] = {}
    for field in fields:
        value = raw.get(field.name)
        if value is None or (from_text and value == ""):
            if not field.nullable and field.name != stamped:
                raise RowError(where, field.name, "is missing and the field is not nullable")
            if field.name != stamped:
                row[field.name] = None
            continue
        try:
            row[field.name] = _typed(field, value, from_text)
        except ValueError as exc:
            raise RowError(where, field.name, str(exc)) from None
    return row


def _check_columns(path: Path, columns: list[str], fields: list[Field], stamped: str) -> None:
    present = set(columns)
    missing = [
        f.name for f in fields if not f.nullable and f.name != stamped and f.name not in present
    ]
    if missing:
        msg = f"{path} has no column {missing[0]!r}, which the schema requires (columns: {columns})"
        raise ConfigError(msg)


def read_rows(
    path: Path, fmt: str, fields: list[Field], stamped: str = "event_time"
) -> Iterator[tuple[str, dict[str, Any] | RowError]]:
    """(where, typed row or its RowError) for every row of the file, in order.

    `stamped` names the event-time field: when a row has none, the publisher stamps it.
    """
    try:
        if fmt == "csv":
            yield from _csv_rows(path, fields, stamped)
        elif fmt == "jsonl":
            yield from _jsonl_rows(path, fields, stamped)
        else:
            yield from _parquet_rows(path, fields, stamped)
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc


def _attempt(
    raw: Mapping[str, Any], fields: list[Field], where: str, from_text: bool, stamped: str
) -> dict[str, Any] | RowError:
    try:
        return type_row(raw, fields, where, from_text, stamped)
    except RowError as exc:
        return exc


def _csv_rows(
    path: Path, fields: list[Field], stamped: str
) -> Iterator[tuple[str, dict[str, Any] | RowError]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        _check_columns(path, header, fields, stamped)
        start = reader.line_num + 1
        for values in reader:
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if not values:
                continue
            if len(values) != len(header):
                problem = f"the line has {len(values)} values for {len(header)} columns"
                yield where, RowError(where, header[min(len(values), len(header)) - 1], problem)
                continue
            yield (
                where,
                _attempt(dict(zip(header, values, strict=True)), fields, where, True, stamped),
            )


def _jsonl_rows(
    path: Path, fields: list[Field], stamped: str
) -> Iterator[tuple[str, dict[str, Any] | RowError]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except ValueError as exc:
                yield where, RowError(where, "-", f"not a JSON object: {exc}")
                continue
            if not isinstance(record, dict):
                kind = type(record).__name__
                yield where, RowError(where, "-", f"a JSON {kind}, expected an object")
                continue
            missing = [
                x.name
                for x in fields
                if not x.nullable and x.name != stamped and x.name not in record
            ]
            if missing:
                yield where, RowError(where, missing[0], "is missing and the field is not nullable")
                continue
            yield where, _attempt(record, fields, where, False, stamped)


def _parquet_rows(
    path: Path, fields: list[Field], stamped: str
) -> Iterator[tuple[str, dict[str, Any] | RowError]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid for non-Parquet bytes
        msg = f"{path} is not a Parquet file: {exc}"
        raise ConfigError(msg) from exc
    columns = list(table.schema_arrow.names)
    _check_columns(path, columns, fields, stamped)
    wanted = [f.name for f in fields if f.name in columns]
    number = 0
    for batch in table.iter_batches(batch_size=10_000, columns=wanted):
        for record in batch.to_pylist():
            number += 1
            where = f"{path} row {number}"
            yield where, _attempt(record, fields, where, False, stamped)
