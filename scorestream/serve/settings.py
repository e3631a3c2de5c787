"""The HTTP scoring service's settings, built once from the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from scorestream.errors import ConfigError


@dataclass(frozen=True)
class ServeSettings:
    """Where the service listens, which topics it talks through, and its limits."""

    host: str = "127.0.0.1"
    port: int = 8000
    input_topic: str = "features"
    output_topic: str = "scores"
    dead_letter_topic: str = ""  # empty: <input topic>.dlq, as the scorer
    score_format: str = "json"  # how the scorer encodes score records (its --output-format)
    timeout_s: float = 15.0  # a request still waiting after this gets 504
    max_in_flight: int = 10_000  # events published and not yet answered, over all requests
    max_events: int = 1_000  # events in one request
    ready_window_s: float = 300.0  # /readyz wants scorer output newer than this
    create_topics: bool = True
    topic_partitions: int = 2

    def __post_init__(self) -> None:
        for name in ("timeout_s", "ready_window_s"):
            if not getattr(self, name) > 0:
                msg = f"serve setting {name}={getattr(self, name)!r} must be > 0"
                raise ConfigError(msg)
        for name in ("max_in_flight", "max_events", "port"):
            if getattr(self, name) <= 0:
                msg = f"serve setting {name}={getattr(self, name)!r} must be a positive integer"
                raise ConfigError(msg)
        if self.input_topic in (self.output_topic, self.dead_letters):
            msg = (
                f"input topic {self.input_topic!r} must differ from the score and dead-letter "
                "topics"
            )
            raise ConfigError(msg)

    @property
    def dead_letters(self) -> str:
        return self.dead_letter_topic or f"{self.input_topic}.dlq"
