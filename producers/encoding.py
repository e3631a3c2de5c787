"""Record encoders and decoders by format name: JSON (default), Avro, Confluent-framed Avro.

The Avro contracts live in schemas/ (see scorestream/avro.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from scorestream.errors import ConfigError


def iso_millis(epoch_ms: int) -> str:
    """Epoch milliseconds -> ISO-8601 UTC with milliseconds (what the scorer parses)."""
    stamp = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_json(event: Mapping[str, Any]) -> bytes:
    """One event as compact UTF-8 JSON; `event_time` given as epoch ms becomes ISO-8601."""
    body = dict(event)
    if isinstance(body.get("event_time"), int):
        body["event_time"] = iso_millis(body["event_time"])
    return json.dumps(body, separators=(",", ":"), allow_nan=True).encode("utf-8")


def encoder(
    fmt: str, schema: Path | None = None, schema_id: int = 1
) -> Callable[[Mapping[str, Any]], bytes]:
    """The event encoder for a format name (Avro: `schema`, default schemas/event.avsc)."""
    if fmt == "json":
        return encode_json
    if fmt in ("avro", "confluent-avro"):
        from scorestream.avro import EVENT_SCHEMA, avro_encoder

        return avro_encoder(
            confluent=fmt == "confluent-avro", schema=schema or EVENT_SCHEMA, schema_id=schema_id
        )
    msg = f"unknown event format {fmt!r}; expected json, avro or confluent-avro"
    raise ConfigError(msg)


def parse_time(text: str) -> float:
    """ISO-8601 (as the scorer writes it) -> epoch seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def decode_json(data: bytes) -> dict[str, Any]:
    """One JSON record back to a dict (NaN and Infinity tokens accepted)."""
    from scorestream.errors import DataError

    try:
        record = json.loads(data)
    except (ValueError, TypeError) as exc:
        msg = f"bytes {bytes(data[:16]).hex()} are not a JSON record: {exc}"
        raise DataError(msg) from exc
    if not isinstance(record, dict):
        msg = f"JSON record is a {type(record).__name__}, expected an object"
        raise DataError(msg)
    return record


def decoder(fmt: str, schema_dir: Path | None = None) -> Callable[[bytes], dict[str, Any]]:
    """The decoder of score records for a format name (what subscribers use)."""
    if fmt == "json":
        return decode_json
    if fmt in ("avro", "confluent-avro"):
        from scorestream.avro import SCORE_SCHEMA, avro_decoder

        return avro_decoder(
            confluent=fmt == "confluent-avro", writer=SCORE_SCHEMA, schema_dir=schema_dir
        )
    msg = f"unknown record format {fmt!r}; expected json, avro or confluent-avro"
    raise ConfigError(msg)
