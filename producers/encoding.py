"""Event encoders: JSON (default); the Avro contract lives in schemas/ (see producers/avro.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
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


def encoder(fmt: str) -> Callable[[Mapping[str, Any]], bytes]:
    """The encoder for a format name."""
    if fmt == "json":
        return encode_json
    if fmt in ("avro", "confluent-avro"):
        from producers.avro import avro_encoder

        return avro_encoder(confluent=fmt == "confluent-avro")
    msg = f"unknown event format {fmt!r}; expected json, avro or confluent-avro"
    raise ConfigError(msg)


def parse_time(text: str) -> float:
    """ISO-8601 (as the scorer writes it) -> epoch seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
