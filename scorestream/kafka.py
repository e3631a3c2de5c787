"""Kafka connection settings shared by every client we run (Spark, confluent-kafka, kafka-python).

Secrets in the options are masked whenever the settings are printed or logged.

One module (about 320 lines): the settings and the admin calls made with them (metadata, topics,
their size limits) are what every component shares to reach a broker, and the admin calls lean
on the settings' option handling and `describe_error`'s secret-free wording.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorestream.errors import ConfigError, StackError
from scorestream.options import is_secret
from scorestream.schema_registry import is_registry_option

# Options that mean the same to librdkafka and to the Java client; anything else given with
# -X goes to both too, and the client that does not know it complains with its own message.
JAVA_ONLY = {
    "sasl.jaas.config",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
}
LIBRDKAFKA_ONLY = {"sasl.username", "sasl.password", "ssl.ca.location"}

# Producer settings of the scorer's Spark Kafka sinks where the user sets none (-X wins). A
# micro-batch hands the producer tens of thousands of records at once; with the Java client's
# defaults (no linger, 16 KiB batches, no compression) they leave in many small requests. On a
# 100k-record batch (2 cores, local broker) writing took 856 ms with the defaults, 559 ms with
# linger and 256 KiB batches, and 254 ms with lz4 as well. Consumers must read lz4, as every
# maintained client does (kafka-python with the `lz4` package).
SINK_DEFAULTS = {"linger.ms": "5", "batch.size": "262144", "compression.type": "lz4"}


def parse_option(text: str) -> tuple[str, str]:
    """Parse one `key=value` client option (the value may itself contain '=')."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        msg = f"client option {text.split('=')[0]!r} must look like key=value"
        raise ConfigError(msg)
    return key.strip(), value


def read_properties(path: Path) -> dict[str, str]:
    """Read a client.properties file as Java does (java.util.Properties: `key=value`,
    `key: value` and `key value` lines, `#`/`!` comments, `\\` line continuations and escapes)."""
    import javaproperties

    try:
        with path.open(encoding="utf-8") as f:
            props: dict[str, str] = javaproperties.load(f)
    except OSError as exc:
        msg = f"cannot read Kafka client config {path}: {exc.strerror}"
        raise ConfigError(msg) from exc
    except ValueError as exc:  # a bad \\u escape; the line may hold a secret: never echo it
        msg = f"cannot parse Kafka client config {path}: {type(exc).__name__}"
        raise ConfigError(msg) from exc
    return props


def _jaas(mechanism: str, username: str, password: str) -> str:
    module = (
        "org.apache.kafka.common.security.plain.PlainLoginModule"
        if mechanism.upper() == "PLAIN"
        else "org.apache.kafka.common.security.scram.ScramLoginModule"
    )
    user = username.replace('"', '\\"')
    secret = password.replace('"', '\\"')
    return f'{module} required username="{user}" password="{secret}";'


@dataclass(frozen=True)
class KafkaSettings:
    """Where the brokers are and how to talk to them."""

    bootstrap: str = "127.0.0.1:9092"
    options: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {k: ("***" if is_secret(k) else v) for k, v in self.options.items()}
        return f"KafkaSettings(bootstrap={self.bootstrap!r}, options={shown!r})"

    __str__ = __repr__

    @classmethod
    def build(
        cls, bootstrap: str, config_file: str | None = None, options: Iterable[str] = ()
    ) -> KafkaSettings:
        """From the CLI: a properties file, then -X key=value options (which win). The file's
        Schema Registry keys are not Kafka's (see scorestream/schema_registry.py)."""
        merged: dict[str, str] = {}
        if config_file:
            props = read_properties(Path(config_file))
            merged.update({k: v for k, v in props.items() if not is_registry_option(k)})
        for text in options:
            key, value = parse_option(text)
            merged[key] = value
        merged.pop("bootstrap.servers", None)
        return cls(bootstrap=bootstrap, options=merged)

    def _java_options(self) -> dict[str, str]:
        opts = {k: v for k, v in self.options.items() if k not in LIBRDKAFKA_ONLY}
        mechanism = self.options.get("sasl.mechanism", "")
        if "sasl.username" in self.options and "sasl.jaas.config" not in opts:
            opts["sasl.jaas.config"] = _jaas(
                mechanism or "PLAIN",
                self.options["sasl.username"],
                self.options.get("sasl.password", ""),
            )
        return opts

    def spark_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source and sink (`kafka.` prefixed)."""
        opts = {"kafka.bootstrap.servers": self.bootstrap}
        opts.update({f"kafka.{k}": v for k, v in self._java_options().items()})
        return opts

    def spark_sink_options(
        self, linger_ms: int = 5, max_request_bytes: int | None = None
    ) -> dict[str, str]:
        """Options for Spark's Kafka sink: `spark_options()` over SINK_DEFAULTS, with the
        given linger (real-time mode passes 0: it sends each record as soon as it is scored)
        and `max.request.size` (the largest record the sink's topics take, from preflight)."""
        defaults = {**SINK_DEFAULTS, "linger.ms": str(linger_ms)}
        if max_request_bytes is not None:
            defaults["max.request.size"] = str(max_request_bytes)
            # The producer also refuses a record larger than its whole buffer (32 MiB).
            if max_request_bytes > 33_554_432:
                defaults["buffer.memory"] = str(max_request_bytes)
        opts = {f"kafka.{k}": v for k, v in defaults.items() if k not in self.options}
        opts.update(self.spark_options())
        return opts

    def confluent(self, **overrides: Any) -> dict[str, Any]:
        """Configuration for a confluent-kafka (librdkafka) client; overrides win."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        conf.update({k: v for k, v in self.options.items() if k not in JAVA_ONLY})
        conf.update(overrides)
        return conf


def user_max_request_bytes(settings: KafkaSettings) -> int | None:
    """The producers' `max.request.size` the user set (-X or properties), if any."""
    text = settings.options.get("max.request.size")
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError as exc:
        msg = f"client option max.request.size={text!r} is not a whole number of bytes"
        raise ConfigError(msg) from exc
    if value <= 0:
        msg = f"client option max.request.size={value} must be positive"
        raise ConfigError(msg)
    return value


def max_message_bytes(
    settings: KafkaSettings, topics: Iterable[str], timeout_s: float = 30.0
) -> dict[str, int]:
    """Each topic's `max.message.bytes` (the largest record batch its brokers accept)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(settings.confluent())
    wanted = list(dict.fromkeys(topics))
    futures = admin.describe_configs(
        [ConfigResource("topic", t) for t in wanted], request_timeout=timeout_s
    )
    limits: dict[str, int] = {}
    for resource, future in futures.items():
        try:
            config = future.result(timeout=timeout_s)
        except KafkaException as exc:
            msg = (
                f"cannot read the configuration of topic {resource.name!r} on "
                f"{settings.bootstrap}: {describe_error(exc)}"
            )
            raise StackError(msg) from exc
        entry = config.get("max.message.bytes")
        if entry is None or entry.value is None:
            msg = f"topic {resource.name!r} on {settings.bootstrap} reports no max.message.bytes"
            raise StackError(msg)
        limits[resource.name] = int(entry.value)
    return limits


def describe_error(exc: BaseException) -> str:
    """One line for a client exception, without anything secret in it."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def wait_for_metadata(settings: KafkaSettings, timeout_s: float) -> int:
    """Ask the brokers for cluster metadata until they answer; return the broker count."""
    from confluent_kafka.admin import AdminClient

    refused: list[str] = []

    def on_error(err: Any) -> None:
        # A refused login is final (retrying will not fix a password): fail at once, with
        # librdkafka's reason, which names the mechanism but never the secret.
        if err.code() in (-169, 58):  # _AUTHENTICATION, SASL_AUTHENTICATION_FAILED
            refused.append(err.str())

    # log_level 0: connection refusals while the broker starts are expected, not news.
    admin = AdminClient(settings.confluent(log_level=0, error_cb=on_error))
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        admin.poll(0)  # serves on_error
        if refused:
            msg = (
                f"Kafka at {settings.bootstrap} refused our credentials ({refused[0]}); check "
                "security.protocol, sasl.mechanism, sasl.username and sasl.password"
            )
            raise StackError(msg)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            msg = f"Kafka at {settings.bootstrap} did not answer within {timeout_s:.0f} s ({last})"
            raise StackError(msg)
        try:
            meta = admin.list_topics(timeout=min(2.0, max(remaining, 0.1)))
            if meta.brokers:
                return len(meta.brokers)
        except Exception as exc:
            last = describe_error(exc)


def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str],
    partitions: int = 1,
    replication: int | None = None,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created.

    Without an explicit `replication` a topic gets min(3, brokers) replicas, and with three
    or more replicas `min.insync.replicas=2` (unless `config` says otherwise), so an
    `acks=all` write survives losing any one broker and is never acknowledged by one alone.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.confluent())
    meta = admin.list_topics(timeout=timeout_s)
    existing = set(meta.topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return []
    replicas, topic_config = topic_layout(len(meta.brokers), replication, config)
    futures = admin.create_topics(
        [NewTopic(t, partitions, replicas, config=topic_config) for t in wanted],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                msg = (
                    f"cannot create topic {topic!r} on {settings.bootstrap}: {describe_error(exc)}"
                )
                raise StackError(msg) from exc
    _await_leaders(admin, settings, wanted, timeout_s)
    return wanted


def _await_leaders(
    admin: Any, settings: KafkaSettings, topics: list[str], timeout_s: float
) -> None:
    """Wait until every partition of the new topics has a leader.

    Creation returns before leaders are elected; a client that asks for offsets in between
    gets NOT_LEADER_FOR_PARTITION, so callers get topics that are ready to use.
    """
    deadline = time.monotonic() + timeout_s
    pending = list(topics)
    while pending:
        meta = admin.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        pending = [
            t
            for t in pending
            if t not in meta.topics
            or meta.topics[t].error is not None
            or not meta.topics[t].partitions
            or any(p.leader < 0 for p in meta.topics[t].partitions.values())
        ]
        if pending and time.monotonic() >= deadline:
            msg = (
                f"topics {pending} on {settings.bootstrap} have no leader for every partition "
                f"after {timeout_s:.0f} s"
            )
            raise StackError(msg)
        if pending:
            time.sleep(0.05)  # polling metadata with a deadline


def topic_layout(
    brokers: int, replication: int | None = None, config: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    """Replication factor and topic config for a cluster of `brokers` (see ensure_topics)."""
    replicas = replication if replication is not None else max(1, min(3, brokers))
    topic_config = dict(config or {})
    if replicas >= 3:
        topic_config.setdefault("min.insync.replicas", "2")
    return replicas, topic_config


def topic_partitions(settings: KafkaSettings, topic: str, timeout_s: float = 10.0) -> int:
    """How many partitions a topic has (0 when it does not exist)."""
    from confluent_kafka.admin import AdminClient

    meta = AdminClient(settings.confluent()).list_topics(topic=topic, timeout=timeout_s)
    info = meta.topics.get(topic)
    if info is None or info.error is not None:
        return 0
    return len(info.partitions)
