"""Avro events and scores with fastavro: the contracts in schemas/, plain or Confluent-framed.

Plain Avro is the bare binary body (the reader must know the writer schema). The Confluent wire
format prefixes it with magic byte 0 and the writer schema's id as a 4-byte big-endian integer,
which is what Confluent's serializers write; the id is resolved against a local directory of
schemas named `<id>.avsc` (no schema registry server is needed).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorestream.errors import ConfigError, DataError
from scorestream.paths import SCHEMAS_DIR

if TYPE_CHECKING:
    from scorestream.schema_registry import SchemaRegistry

MAGIC = 0
HEADER = struct.Struct(">bI")  # magic byte, schema id
EVENT_SCHEMA = SCHEMAS_DIR / "event.avsc"
SCORE_SCHEMA = SCHEMAS_DIR / "score.avsc"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Schema = Mapping[str, Any]


def read_schema(source: Path | str | Schema) -> dict[str, Any]:
    """An Avro schema as a dict, from a file path, JSON text or a dict."""
    if isinstance(source, Mapping):
        return dict(source)
    text = str(source)
    if isinstance(source, Path) or not text.lstrip().startswith("{"):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"cannot read Avro schema {path}: {exc.strerror}"
            raise ConfigError(msg) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        msg = f"Avro schema {str(source)[:80]!r} is not valid JSON: {exc}"
        raise ConfigError(msg) from exc
    if not isinstance(data, dict) or data.get("type") != "record":
        msg = f"Avro schema {str(source)[:80]!r} must be a record schema (a JSON object)"
        raise ConfigError(msg)
    return data


def _parsed(source: Path | str | Schema) -> Any:
    import fastavro

    try:
        return fastavro.parse_schema(read_schema(source))
    except fastavro.schema.SchemaParseException as exc:
        msg = f"Avro schema {str(source)[:80]!r} is not valid: {exc}"
        raise ConfigError(msg) from exc


def schemas_in(directory: Path) -> dict[int, Path]:
    """The `<id>.avsc` files of a schema directory, by Confluent schema id."""
    try:
        names = sorted(directory.iterdir())
    except OSError as exc:
        msg = f"cannot list the schema directory {directory}: {exc.strerror}"
        raise ConfigError(msg) from exc
    found: dict[int, Path] = {}
    for path in names:
        if path.suffix == ".avsc" and path.stem.isdigit():
            found[int(path.stem)] = path
    return found


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent wire-format header."""
    if not 0 <= schema_id < 2**31:
        msg = f"schema id {schema_id} is outside 0..2^31-1"
        raise ConfigError(msg)
    return HEADER.pack(MAGIC, schema_id) + body


def unframe(data: bytes) -> tuple[int, bytes]:
    """Split a Confluent-framed record into (schema id, Avro body)."""
    if len(data) < HEADER.size or data[0] != MAGIC:
        start = data[:5].hex() or "nothing"
        msg = (
            f"record is not in the Confluent wire format: expected magic byte 0 and a 4-byte "
            f"schema id, got {len(data)} bytes starting {start}"
        )
        raise DataError(msg)
    _, schema_id = HEADER.unpack_from(data)
    return schema_id, data[HEADER.size :]


def _to_avro(record: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(record)
    for name in ("event_time", "scored_at"):
        value = body.get(name)
        if isinstance(value, str):
            stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            body[name] = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    return body


def _from_avro(record: Mapping[str, Any]) -> dict[str, Any]:
    """Timestamps back to epoch milliseconds, as the encoders take them."""
    return {
        k: (v - _EPOCH) // dt.timedelta(milliseconds=1) if isinstance(v, dt.datetime) else v
        for k, v in record.items()
    }


def avro_encoder(
    confluent: bool = False, schema: Path | str | Schema = EVENT_SCHEMA, schema_id: int = 1
) -> Callable[[Mapping[str, Any]], bytes]:
    """An encoder of records to Avro (Confluent-framed with `schema_id` when `confluent`).

    Timestamps (`event_time`, `scored_at`) may be epoch milliseconds or ISO-8601 text.
    """
    import fastavro

    parsed = _parsed(schema)
    header = HEADER.pack(MAGIC, schema_id) if confluent else b""

    def encode(record: Mapping[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(header)
        try:
            fastavro.schemaless_writer(out, parsed, _to_avro(record))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            msg = f"record {str(record)[:120]} does not fit the Avro schema: {exc}"
            raise DataError(msg) from exc
        return out.getvalue()

    return encode


def avro_decoder(
    confluent: bool = False,
    writer: Path | str | Schema = EVENT_SCHEMA,
    reader: Path | str | Schema | None = None,
    schema_dir: Path | None = None,
    registry: SchemaRegistry | None = None,
) -> Callable[[bytes], dict[str, Any]]:
    """A decoder of Avro records (what subscribers and tests use).

    Plain Avro is read with the `writer` schema; Confluent-framed records with the schema whose
    id the header names, from `schema_dir` (`<id>.avsc`) or a Schema Registry (fetched once per
    id), else with `writer`. With a `reader`
    schema, Avro schema resolution applies (added fields get their defaults, removed ones go).
    Timestamps come back as epoch milliseconds. Bad bytes raise DataError.
    """
    import fastavro

    default_writer = _parsed(writer)
    parsed_reader = _parsed(reader) if reader is not None else None
    by_id: dict[int, Any] = {}
    if schema_dir is not None:
        by_id = {i: _parsed(p) for i, p in schemas_in(schema_dir).items()}

    def decode(data: bytes) -> dict[str, Any]:
        body, writer_schema = data, default_writer
        if confluent:
            schema_id, body = unframe(data)
            if registry is not None and schema_id not in by_id:
                text = registry.schema(schema_id)
                if text is None:
                    msg = f"schema id {schema_id} is not in the Schema Registry at {registry.url}"
                    raise DataError(msg)
                by_id[schema_id] = _parsed(text)
            if schema_dir is not None or registry is not None:
                if schema_id not in by_id:
                    msg = f"schema id {schema_id} is not in {schema_dir} (known: {sorted(by_id)})"
                    raise DataError(msg)
                writer_schema = by_id[schema_id]
        stream = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(stream, writer_schema, parsed_reader)
        except Exception as exc:  # fastavro raises many types on bad bytes
            msg = f"bytes {body[:16].hex()} are not an Avro record of the schema: {exc!r}"
            raise DataError(msg) from exc
        if not isinstance(record, dict):
            msg = "the Avro schema is not a record schema"
            raise DataError(msg)
        return _from_avro(record)

    return decode
