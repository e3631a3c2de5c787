"""The service on uvicorn: a server for `scorestream serve`, or on a thread for the demo."""

from __future__ import annotations

import threading
import time
from typing import Any

from scorestream.errors import StackError
from scorestream.kafka import KafkaSettings
from scorestream.serve.settings import ServeSettings


def server(kafka: KafkaSettings, settings: ServeSettings, log_level: str = "warning") -> Any:
    """A uvicorn server of the app (not started)."""
    import uvicorn

    from scorestream.serve.app import create_app

    config = uvicorn.Config(
        create_app(kafka, settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        # Longer than the usual load balancer idle timeout (60 s): a server that closes an idle
        # keep-alive connection first races the client's next request on it (a reset).
        timeout_keep_alive=65,
    )
    return uvicorn.Server(config)


class Background:
    """The service on a thread of this process (what `demo --keep` runs), stopped by close()."""

    def __init__(self, kafka: KafkaSettings, settings: ServeSettings) -> None:
        self.settings = settings
        self._server = server(kafka, settings)
        self._thread = threading.Thread(target=self._server.run, name="serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                msg = f"the scoring service did not start on {self.url} within {timeout_s:.0f} s"
                raise StackError(msg)
            time.sleep(0.05)  # polling uvicorn's started flag with a deadline

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
