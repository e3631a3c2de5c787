"""Subcommand `serve`: the HTTP scoring service on uvicorn, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from scorestream import options as opt
from scorestream.cli_common import Command, kafka_args, kafka_settings
from scorestream.errors import StackError
from scorestream.kafka import KafkaSettings
from scorestream.serve.settings import ServeSettings
from streaming.scoring import OUTPUT_FORMATS

DEFAULTS = ServeSettings()


def serve_args(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    opt.add(p, "--host", env="SCORESTREAM_SERVE_HOST", default=d.host, help="address to bind")
    opt.add(
        p,
        "--port",
        env="SCORESTREAM_SERVE_PORT",
        default=d.port,
        type=opt.positive_int,
        help="HTTP port",
    )
    opt.add(
        p,
        "--input-topic",
        env="SCORESTREAM_INPUT_TOPIC",
        default=d.input_topic,
        help="topic the scorer reads; requests are published here",
    )
    opt.add(
        p,
        "--output-topic",
        env="SCORESTREAM_OUTPUT_TOPIC",
        default=d.output_topic,
        help="topic the scorer writes scores to",
    )
    opt.add(
        p,
        "--dlq-topic",
        env="SCORESTREAM_DLQ_TOPIC",
        default=d.dead_letter_topic,
        help="the scorer's dead-letter topic (empty: <input topic>.dlq)",
    )
    p.add_argument(
        "--score-format",
        choices=OUTPUT_FORMATS,
        default=d.score_format,
        help="encoding of score records, the scorer's --output-format "
        f"[env: none, default: {d.score_format}]",
    )
    opt.add(
        p,
        "--timeout",
        env="SCORESTREAM_SERVE_TIMEOUT",
        default=d.timeout_s,
        type=opt.non_negative_float,
        help="seconds a request waits for its answers before 504",
    )
    opt.add(
        p,
        "--max-in-flight",
        env="SCORESTREAM_SERVE_MAX_IN_FLIGHT",
        default=d.max_in_flight,
        type=opt.positive_int,
        help="events waiting for answers over all requests; more get 429",
    )
    opt.add(
        p,
        "--max-events",
        env="SCORESTREAM_SERVE_MAX_EVENTS",
        default=d.max_events,
        type=opt.positive_int,
        help="events in one request; more get 413",
    )
    opt.add(
        p,
        "--ready-window",
        env="SCORESTREAM_SERVE_READY_WINDOW",
        default=d.ready_window_s,
        type=opt.non_negative_float,
        help="/readyz needs a score or dead letter from the scorer newer than this (seconds)",
    )


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(
        host=args.host,
        port=args.port,
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        dead_letter_topic=args.dlq_topic,
        score_format=args.score_format,
        timeout_s=args.timeout,
        max_in_flight=args.max_in_flight,
        max_events=args.max_events,
        ready_window_s=args.ready_window,
    )


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


def cmd_serve(args: argparse.Namespace) -> int:
    settings = serve_settings(args)
    kafka = kafka_settings(args)
    print(
        f"serving POST http://{settings.host}:{settings.port}/v1/score through "
        f"{settings.input_topic} -> {settings.output_topic} / {settings.dead_letters} "
        f"(docs on /docs)",
        file=sys.stderr,
        flush=True,
    )
    srv = server(kafka, settings, log_level=str(args.log_level).lower())
    srv.run()  # uvicorn handles SIGTERM and Ctrl-C: in-flight requests finish first
    return 0 if srv.started else 1


def register(command: Command) -> None:
    """Add `serve` to the CLI."""
    p = command("serve", cmd_serve, "HTTP request-reply scoring through Kafka and the scorer")
    kafka_args(p)
    serve_args(p)
