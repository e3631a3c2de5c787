"""A Confluent-compatible Schema Registry: its settings (secrets masked) and a thin client.

Settings come from `--schema-registry URL` and the same client.properties file the Kafka clients
read, with the key names Confluent's own clients use there (`schema.registry.url`,
`basic.auth.user.info`, `schema.registry.ssl.ca.location`, ...). The client is
confluent-kafka's `SchemaRegistryClient`; it does no I/O until first asked, and its errors
become ours, naming the registry's URL (never its credentials).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scorestream.errors import ConfigError, StackError
from scorestream.options import is_secret

PREFIX = "schema.registry."
# Keys that Confluent's clients read without the prefix (basic auth), in a properties file.
UNPREFIXED = {"basic.auth.user.info", "basic.auth.credentials.source"}
# What SchemaRegistryClient accepts besides the URL; numbers must reach it as numbers.
CLIENT_KEYS = {
    "basic.auth.user.info",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "timeout",
    "max.retries",
    "retries.wait.ms",
    "retries.max.wait.ms",
    "cache.capacity",
    "proxy",
}
NUMERIC = {"timeout", "max.retries", "retries.wait.ms", "retries.max.wait.ms", "cache.capacity"}
# A registry that is down should stop start-up in seconds, not after minutes of retries.
DEFAULTS = {"timeout": "10", "max.retries": "2", "retries.wait.ms": "500"}
NOT_FOUND = (40401, 40403)  # subject or schema not found


def is_registry_option(key: str) -> bool:
    """Whether a client.properties key is meant for the Schema Registry (not for Kafka)."""
    return key.startswith(PREFIX) or key in UNPREFIXED


def masked_url(url: str) -> str:
    """The URL with any password in it replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@dataclass(frozen=True)
class SchemaRegistrySettings:
    """Where the Schema Registry is and how to talk to it (client option names, unprefixed)."""

    url: str
    # Not hashed (a dict is not hashable); settings equal by URL and options all the same.
    options: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            msg = (
                f"Schema Registry URL {masked_url(self.url)!r} must start with http:// or https://"
            )
            raise ConfigError(msg)
        unknown = sorted(set(self.options) - CLIENT_KEYS - {"basic.auth.credentials.source"})
        if unknown:
            msg = (
                f"unknown Schema Registry options {unknown}; expected some of "
                f"{sorted(CLIENT_KEYS)} (in a properties file with the prefix {PREFIX!r})"
            )
            raise ConfigError(msg)

    def __repr__(self) -> str:
        shown = {k: ("***" if is_secret(k) else v) for k, v in self.options.items()}
        return f"SchemaRegistrySettings(url={masked_url(self.url)!r}, options={shown!r})"

    __str__ = __repr__

    @property
    def shown_url(self) -> str:
        return masked_url(self.url)

    @classmethod
    def build(
        cls,
        url: str = "",
        properties: Mapping[str, str] | None = None,
        options: Iterable[str] = (),
    ) -> SchemaRegistrySettings | None:
        """From the CLI: registry keys of the properties file, then `KEY=VALUE` options (which
        win); `url` (the flag) wins over `schema.registry.url`. None when no URL is given."""
        from scorestream.kafka import parse_option

        merged: dict[str, str] = {}
        for key, value in (properties or {}).items():
            if is_registry_option(key):
                merged[key.removeprefix(PREFIX)] = value
        for text in options:
            key, value = parse_option(text)
            merged[key.removeprefix(PREFIX)] = value
        found = url or merged.pop("url", "")
        merged.pop("url", None)
        if not found:
            if merged:
                msg = (
                    f"Schema Registry options {sorted(merged)} are set but no registry URL "
                    "(--schema-registry or schema.registry.url)"
                )
                raise ConfigError(msg)
            return None
        return cls(url=found.rstrip("/"), options=merged)

    def client_config(self) -> dict[str, Any]:
        """The configuration of confluent-kafka's SchemaRegistryClient."""
        conf: dict[str, Any] = {"url": self.url}
        for key, value in {**DEFAULTS, **self.options}.items():
            if key == "basic.auth.credentials.source":
                if value.upper() not in ("USER_INFO", "URL"):
                    msg = (
                        f"basic.auth.credentials.source {value!r} is not supported; expected "
                        "USER_INFO (basic.auth.user.info) or URL (user:password@ in the URL)"
                    )
                    raise ConfigError(msg)
                continue
            if key in NUMERIC:
                try:
                    conf[key] = float(value) if key == "timeout" else int(value)
                except ValueError as exc:
                    msg = f"Schema Registry option {key}={value!r} is not a number"
                    raise ConfigError(msg) from exc
            else:
                conf[key] = value
        return conf


class SchemaRegistry:
    """A Schema Registry client: schemas by id (cached), subjects registered, errors ours."""

    def __init__(self, settings: SchemaRegistrySettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._by_id: dict[int, str] = {}

    @property
    def url(self) -> str:
        return self.settings.shown_url

    def _sr(self) -> Any:
        if self._client is None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            try:
                self._client = SchemaRegistryClient(self.settings.client_config())
            except (ValueError, TypeError, OSError) as exc:
                msg = f"cannot configure the Schema Registry client for {self.url}: {exc}"
                raise ConfigError(msg) from exc
        return self._client

    def _failure(self, what: str, exc: Exception) -> StackError:
        status = getattr(exc, "http_status_code", None)
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if status in (401, 403):
            text = (
                f"HTTP {status}: the registry refused our credentials; check "
                "basic.auth.user.info (schema.registry.basic.auth.user.info)"
            )
        msg = f"Schema Registry at {self.url} {what}: {text}"
        return StackError(msg)

    def check(self) -> None:
        """Fail with the URL unless the registry answers (and accepts our credentials)."""
        started = time.monotonic()
        try:
            self._sr().get_subjects()
        except ConfigError:
            raise
        except Exception as exc:
            what = f"did not answer ({time.monotonic() - started:.1f} s)"
            raise self._failure(what, exc) from exc

    def schema(self, schema_id: int) -> str | None:
        """The schema text registered under `schema_id`, or None when the registry has none.
        Other failures (unreachable, refused) raise StackError: they say nothing of the id."""
        if schema_id in self._by_id:
            return self._by_id[schema_id]
        try:
            found = self._sr().get_schema(schema_id)
        except Exception as exc:
            if getattr(exc, "error_code", None) in NOT_FOUND:
                return None
            what = f"could not be asked for schema id {schema_id}"
            raise self._failure(what, exc) from exc
        self._by_id[schema_id] = found.schema_str
        return self._by_id[schema_id]

    def register(self, subject: str, schema_text: str) -> int:
        """Register an Avro schema under `subject` (idempotent); return its id."""
        from confluent_kafka.schema_registry import Schema

        try:
            schema_id = int(self._sr().register_schema(subject, Schema(schema_text, "AVRO")))
        except Exception as exc:
            if getattr(exc, "http_status_code", None) == 409:
                msg = (
                    f"Schema Registry at {self.url} refused the schema for subject {subject!r} "
                    f"as incompatible with its earlier versions: {exc}"
                )
                raise ConfigError(msg) from exc
            what = f"could not register subject {subject!r}"
            raise self._failure(what, exc) from exc
        self._by_id[schema_id] = schema_text
        return schema_id


def subject(topic: str) -> str:
    """The subject of a topic's values (Confluent's default TopicNameStrategy)."""
    return f"{topic}-value"
