"""The scorer's monitoring settings: where the exporter listens and the drift window's size."""

from __future__ import annotations

from dataclasses import dataclass

from scorestream.monitoring.errors import MetricsError

DEFAULT_METRICS_PORT = 9400


@dataclass(frozen=True)
class MonitorSettings:
    """Exporter address and port (0: any free port) and the sliding drift window.

    The window holds the last `window_events` scored events, or the last `window_seconds`
    seconds of batches, or whichever is smaller when both are set (None: no such limit).
    """

    metrics_address: str = "127.0.0.1"
    metrics_port: int = DEFAULT_METRICS_PORT
    drift: bool = True
    window_events: int | None = 10_000
    window_seconds: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.metrics_port <= 65535:
            msg = f"metrics port must lie in [0, 65535] (0: any free port), got {self.metrics_port}"
            raise MetricsError(msg)
        if self.drift and self.window_events is None and self.window_seconds is None:
            msg = "the drift window needs a number of events or a duration (or both)"
            raise MetricsError(msg)
        if self.window_events is not None and self.window_events < 1:
            msg = f"the drift window must hold at least 1 event, got {self.window_events}"
            raise MetricsError(msg)
        if self.window_seconds is not None and not self.window_seconds > 0:
            msg = f"the drift window's duration must be > 0 seconds, got {self.window_seconds}"
            raise MetricsError(msg)
